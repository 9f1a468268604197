"""A real Celery worker (``celery -A config worker``) on Redis runs an evaluation job that the
API queued, against the test database; any web process answers its status from there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation, EvaluationJob
from testing.celery import CeleryWorker, run_celery_worker
from testing.live import free_port

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
    return free_port()


@pytest.fixture
def celery_worker(settings, tmp_path, worker_metrics_port) -> Iterator[CeleryWorker]:
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs Redis (REDIS_URL) as the broker")
    settings.EVALUATION_JOBS_BACKEND = "celery"
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        # Its own metrics endpoint; the pool's process counts through the multi-process files.
        METRICS: str(worker_metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "EVALUATION_JOBS_BACKEND": "celery",
        "EVALUATION_REPORTS_DIR": str(tmp_path / "reports"),
    }
    # prefork: the judge's counts are made in a pool process, not the one serving /metrics.
    with run_celery_worker(env, log_path=tmp_path / "worker.log", pool="prefork") as worker:
        yield worker


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
        assert time.monotonic() < deadline, celery_worker.log()[-3000:]
        time.sleep(0.2)
    assert body["status"] == "done", body
    assert body["report"]["total_traces"] == 2
    assert body["progress"]["completed"] == 4
    assert AgentEvaluation.objects.filter(run__in=runs).count() == 4
    assert "evaluations.run_job" in celery_worker.log()


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
            assert time.monotonic() < deadline, celery_worker.log()[-3000:]
            time.sleep(0.2)
    AgentRunFactory.create_batch(3, user=user)
    client = client_for(user)
    job_id = client.post(
        "/api/v1/agent/evaluations", {"metrics": ["toxicity"]}, format="json"
    ).json()["job_id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/v1/agent/evaluations/jobs/{job_id}").json()["status"] != "done":
        assert time.monotonic() < deadline, celery_worker.log()[-3000:]
        time.sleep(0.2)
    after = httpx.get(url, timeout=5).text
    scores = "agent_evaluation_score_count"
    calls = "agent_evaluation_judge_calls_total"
    assert (
        _sample(after, scores, metric="toxicity") - _sample(before, scores, metric="toxicity") == 3
    )
    assert _sample(after, calls, outcome="ok") - _sample(before, calls, outcome="ok") == 3
