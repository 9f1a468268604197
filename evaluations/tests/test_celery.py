"""A real Celery worker (``celery -A config worker``) on Redis runs an evaluation job that the
API queued, against the test database; any web process answers its status from there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from http import HTTPStatus

import pytest

from agents.tests.factories import AgentRunFactory
from evaluations.models import AgentEvaluation, EvaluationJob
from testing.live import BASE_DIR, database_env

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_worker(settings, tmp_path):
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs Redis (REDIS_URL) as the broker")
    settings.EVALUATION_JOBS_BACKEND = "celery"
    env = {
        **os.environ,
        **database_env(),
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
