"""A real Celery worker (``celery -A config worker``) on Redis runs an evaluation job that the
API queued, against the test database; any web process answers its status from there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from http import HTTPStatus

import pytest

from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation, EvaluationJob
from testing.live import BASE_DIR, database_env

METRICS = "WORKER_METRICS_PORT"


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus' text format (0.0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_metrics_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def celery_worker(settings, tmp_path, worker_metrics_port):
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs Redis (REDIS_URL) as the broker")
    settings.EVALUATION_JOBS_BACKEND = "celery"
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        **os.environ,
        **database_env(),
        # Its own metrics endpoint; the pool's process counts through the multi-process files.
        METRICS: str(worker_metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "EVALUATION_JOBS_BACKEND": "celery",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "EVALUATION_REPORTS_DIR": str(tmp_path / "reports"),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "1",
             "--loglevel", "INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=BASE_DIR, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the worker did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield log
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_worker_runs_the_job_the_api_queued(celery_worker, user, client_for) -> None:
    runs = AgentRunFactory.create_batch(2, user=user)
    client = client_for(user)
    response = client.post(
        "/api/v1/agent/evaluations", {"metrics": ["toxicity", "relevancy"]}, format="json"
    )
    assert response.status_code == HTTPStatus.ACCEPTED
    job_id = response.json()["job_id"]
    assert EvaluationJob.objects.get(pk=job_id).backend == "celery"

    deadline = time.monotonic() + 60
    while True:
        body = client.get(f"/api/v1/agent/evaluations/jobs/{job_id}").json()
        if body["status"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, celery_worker.read_text()[-3000:]
        time.sleep(0.2)
    assert body["status"] == "done", body
    assert body["report"]["total_traces"] == 2
    assert body["progress"]["completed"] == 4
    assert AgentEvaluation.objects.filter(run__in=runs).count() == 4
    assert "evaluations.run_job" in celery_worker.read_text()


def test_the_workers_scores_reach_prometheus(
    celery_worker, worker_metrics_port, user, client_for
) -> None:
    """The judge calls and scores of a worker's job are counted in the worker's processes, which
    the backend's /metrics never sees: the worker serves them itself (WORKER_METRICS_PORT)."""
    import httpx

    url = f"http://127.0.0.1:{worker_metrics_port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            before = httpx.get(url, timeout=5).text
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, celery_worker.read_text()[-3000:]
            time.sleep(0.2)
    AgentRunFactory.create_batch(3, user=user)
    client = client_for(user)
    job_id = client.post(
        "/api/v1/agent/evaluations", {"metrics": ["toxicity"]}, format="json"
    ).json()["job_id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/v1/agent/evaluations/jobs/{job_id}").json()["status"] != "done":
        assert time.monotonic() < deadline, celery_worker.read_text()[-3000:]
        time.sleep(0.2)
    after = httpx.get(url, timeout=5).text
    scores = "agent_evaluation_score_count"
    calls = "agent_evaluation_judge_calls_total"
    assert (
        _sample(after, scores, metric="toxicity") - _sample(before, scores, metric="toxicity") == 3
    )
    assert _sample(after, calls, outcome="ok") - _sample(before, calls, outcome="ok") == 3
