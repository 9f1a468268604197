"""The evaluations API: jobs in the background, scores scoped to the caller, feedback."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentRunFactory
from evaluations import services
from evaluations.models import USER_FEEDBACK, AgentEvaluation, EvaluationJob
from evaluations.tests.factories import AgentEvaluationFactory, EvaluationJobFactory

EVALUATIONS = "/api/v1/agent/evaluations"


def wait_for_job(client: Any, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{EVALUATIONS}/jobs/{job_id}")
        assert response.status_code == HTTPStatus.OK, response.content
        body = response.json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_post_answers_202_and_the_job_runs_in_the_background(user, client_for) -> None:
    client = client_for(user)
    mine = AgentRunFactory.create_batch(2, user=user)
    other = AgentRunFactory()

    response = client.post(EVALUATIONS, {"metrics": ["helpfulness", "toxicity"]}, format="json")
    assert response.status_code == HTTPStatus.ACCEPTED
    body = response.json()
    assert set(body) == {"job_id", "status"}
    assert body["status"] == "queued"

    job = wait_for_job(client, body["job_id"])
    assert job["status"] == "done", job
    assert job["progress"] == {"completed": 4, "total": 4, "percent": 100.0}
    assert job["backend"] == "embedded"
    report = job["report"]
    assert report["total_traces"] == 2  # the caller's runs only
    assert report["metrics_summary"]["toxicity"] == {
        **report["metrics_summary"]["toxicity"],
        "success_count": 2, "failure_count": 0, "avg_score": 1.0,
    }  # fmt: skip
    assert report["judge"] == {"model": "offline", "offline": True}
    assert AgentEvaluation.objects.filter(run__in=mine).count() == 4
    assert not AgentEvaluation.objects.filter(run=other).exists()
    stored = EvaluationJob.objects.get(pk=body["job_id"])
    assert stored.requested_by == user
    assert stored.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_staff_evaluate_anyones_runs_others_get_404(user, client_for) -> None:
    other = AgentRunFactory()
    response = client_for(user).post(EVALUATIONS, {"run_ids": [str(other.id)]}, format="json")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "not_found"
    assert not EvaluationJob.objects.exists()

    staff = UserFactory(is_staff=True)
    client = client_for(staff)
    response = client.post(EVALUATIONS, {"run_ids": [str(other.id)]}, format="json")
    assert response.status_code == HTTPStatus.ACCEPTED
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "done"
    assert AgentEvaluation.objects.filter(run=other).count() == 5
    # The requester's job is theirs: another user doesn't see it.
    assert client_for(user).get(f"{EVALUATIONS}/jobs/{job['job_id']}").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": ["kindness"]}, None),
        ({"since": "yesterday"}, None),
        ({"since": "nanm"}, None),
        ({"since": "-infh"}, None),
        ({"run_ids": "not-a-list"}, "run_ids"),
        ({"run_ids": ["nope"]}, "run_ids"),
        ({"run_ids": []}, "run_ids"),
        ({"metrics": "helpfulness"}, "metrics"),
    ],
)
def test_bad_requests_are_400_json(user_client, body, field) -> None:
    response = user_client.post(EVALUATIONS, body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    payload = response.json()
    assert payload["detail"]
    if field:
        assert field in payload["errors"]
    assert not EvaluationJob.objects.exists()


@pytest.mark.django_db
def test_scores_list_is_scoped_filtered_and_paginated(user, client_for) -> None:
    run = AgentRunFactory(user=user)
    AgentEvaluationFactory(run=run, metric_name="helpfulness", score=0.9)
    AgentEvaluationFactory(run=run, metric_name="relevancy", score=0.4)
    AgentEvaluationFactory(run=AgentRunFactory(user=user), metric_name="helpfulness")
    theirs = AgentEvaluationFactory(metric_name="helpfulness")
    client = client_for(user)

    body = client.get(EVALUATIONS).json()
    assert len(body["results"]) == 3
    assert str(theirs.id) not in {r["id"] for r in body["results"]}
    first = body["results"][0]
    assert set(first) == {
        "id", "run_id", "metric_name", "score", "source", "eval_metadata", "created_at"
    }  # fmt: skip

    filtered = client.get(EVALUATIONS, {"run_id": str(run.id), "metric": "relevancy"}).json()
    assert [(r["metric_name"], r["score"]) for r in filtered["results"]] == [("relevancy", 0.4)]
    page = client.get(EVALUATIONS, {"limit": 2}).json()
    assert len(page["results"]) == 2
    assert page["next"]
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 1

    staff = client_for(UserFactory(is_staff=True)).get(EVALUATIONS).json()
    assert len(staff["results"]) == 4
    # Another user's run filters to nothing, it doesn't leak.
    other = client.get(EVALUATIONS, {"run_id": str(theirs.run_id)}).json()
    assert other["results"] == []
    users = client.get(EVALUATIONS, {"source": "user"}).json()["results"]
    assert users == []
    AgentEvaluationFactory(run=run, metric_name=USER_FEEDBACK, source="user", score=1.0)
    users = client.get(EVALUATIONS, {"source": "user"}).json()["results"]
    assert [(r["metric_name"], r["source"]) for r in users] == [(USER_FEEDBACK, "user")]
    assert client.get(EVALUATIONS, {"source": "robot"}).status_code == HTTPStatus.BAD_REQUEST
    bad = client.get(EVALUATIONS, {"run_id": "x"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert "run_id" in bad.json()["errors"]


@pytest.mark.django_db
def test_feedback_is_stored_replaced_and_scoped(user, client_for) -> None:
    run = AgentRunFactory(user=user)
    client = client_for(user)
    url = f"/api/v1/agent/runs/{run.id}/feedback"

    response = client.post(url, {"score": 0.2, "comment": "wrong user"}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["metric_name"] == USER_FEEDBACK
    assert body["source"] == "user"
    assert body["score"] == 0.2
    assert body["eval_metadata"]["comment"] == "wrong user"
    response = client.post(url, {"score": 1}, format="json")
    assert response.status_code == HTTPStatus.OK
    feedback = AgentEvaluation.objects.get(run=run, metric_name=USER_FEEDBACK)
    assert feedback.score == 1.0
    assert feedback.source == "user"
    assert AgentEvaluation.objects.filter(run=run).count() == 1

    for bad in ({"score": 1.5}, {"score": "0.5"}, {"score": True}, {}, {"score": None}):
        response = client.post(url, bad, format="json")
        assert response.status_code == HTTPStatus.BAD_REQUEST, bad
        assert "score" in response.json()["errors"]

    stranger = client_for(UserFactory())
    assert stranger.post(url, {"score": 0.0}, format="json").status_code == 404
    missing = f"/api/v1/agent/runs/{uuid.uuid4()}/feedback"
    assert client.post(missing, {"score": 0.5}, format="json").status_code == 404
    staff = client_for(UserFactory(is_staff=True))
    assert staff.post(url, {"score": 0.5}, format="json").status_code == HTTPStatus.OK
    assert AgentEvaluation.objects.get(run=run, metric_name=USER_FEEDBACK).score == 0.5
    assert client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED


@pytest.mark.django_db
def test_anonymous_is_401(api_client) -> None:
    assert api_client.get(EVALUATIONS).status_code == HTTPStatus.UNAUTHORIZED
    assert api_client.post(EVALUATIONS, {}, format="json").status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_a_job_whose_process_died_is_failed_when_noticed(user, client_for, settings) -> None:
    settings.EVALUATION_JOB_STALE_SECONDS = 60
    stale = timezone.now() - timedelta(minutes=5)
    running = EvaluationJobFactory(
        requested_by=user, status="running", started_at=stale, heartbeat_at=stale
    )
    alive = EvaluationJobFactory(
        requested_by=user, status="running", started_at=stale, heartbeat_at=timezone.now()
    )
    body = client_for(user).get(f"{EVALUATIONS}/jobs/{running.id}").json()
    assert body["status"] == "failed"
    assert "interrupted" in body["error"]
    assert client_for(user).get(f"{EVALUATIONS}/jobs/{alive.id}").json()["status"] == "running"
    # A redelivered task of the dead job doesn't run it again once it is failed.
    assert services.job_execute(job_id=running.id) is None
    # The beat sweep: an embedded job queued by a process that died before running it.
    from evaluations.tasks import fail_stale_jobs

    orphan = EvaluationJobFactory(requested_by=user)
    EvaluationJob.objects.filter(pk=orphan.pk).update(created_at=stale)
    waiting = EvaluationJobFactory(requested_by=user, backend="celery")
    EvaluationJob.objects.filter(pk=waiting.pk).update(created_at=stale)
    assert fail_stale_jobs() == 1
    orphan.refresh_from_db()
    waiting.refresh_from_db()
    assert (orphan.status, waiting.status) == ("failed", "queued")  # a worker may still come


@pytest.mark.django_db
def test_evaluation_endpoints_share_the_agent_rate_limit(user, client_for, settings) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.RATE_LIMIT_PER_MINUTE = 2
    client = client_for(user)
    run = AgentRunFactory(user=user)
    assert client.get(EVALUATIONS).status_code == HTTPStatus.OK
    assert (
        client.post(
            f"/api/v1/agent/runs/{run.id}/feedback", {"score": 1}, format="json"
        ).status_code
        == 200
    )
    limited = client.post(EVALUATIONS, {}, format="json")
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1
    # The same budget as the agent endpoints.
    run_response = client.post("/api/v1/agent/run", {"message": "hi"}, format="json")
    assert run_response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    cache.clear()
