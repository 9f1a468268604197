"""A run through the API is one Langfuse trace, one click from its run record."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from agents import tracing
from agents.models import AgentRun
from testing.langfuse import langfuse_settings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_langfuse")]


def test_an_api_run_is_a_trace_with_its_id_on_the_run(
    offline, settings, receiver, user, user_client, admin_client
):
    langfuse_settings(settings, receiver.base_url)
    response = user_client.post(
        "/api/v1/agent/run",
        {"message": "show my items", "metadata": {"feature": "search"}},
        format="json",
        HTTP_X_REQUEST_ID="corr-77",
    )
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    run = AgentRun.objects.get(pk=body["run_id"])
    expected = tracing.trace_id_for_run(run.id)
    assert run.trace_id == expected
    assert body["trace_id"] == expected
    assert body["trace_url"] == f"{receiver.base_url}/trace/{expected}"

    assert tracing.flush_langfuse()
    spans = receiver.wait_for_spans(lambda s: s.trace_id == expected, count=3)
    root = next(s for s in spans if s.attributes.get("langfuse.trace.name") == "agent_run")
    assert root.attributes["user.id"] == str(user.id)
    assert root.attributes["session.id"] == body["thread_id"]
    metadata = root.metadata()
    assert metadata["run_id"] == str(run.id)
    assert metadata["correlation_id"] == "corr-77"
    assert metadata["feature"] == "search"
    assert metadata["model"] == "offline"

    detail = user_client.get(f"/api/v1/agent/runs/{run.id}").json()
    assert detail["trace_url"] == body["trace_url"]
    page = admin_client.get(f"/admin/agents/agentrun/{run.id}/change/").content.decode()
    assert f'href="{body["trace_url"]}"' in page


def test_an_unsampled_run_stores_no_trace_id(offline, settings, receiver, user_client):
    langfuse_settings(settings, receiver.base_url, sample_rate=0.0)
    body = user_client.post("/api/v1/agent/run", {"message": "hi"}, format="json").json()
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.trace_id == ""
    assert body["trace_id"] is None
    assert body["trace_url"] is None
    assert tracing.flush_langfuse()
    assert receiver.trace_requests() == []


def test_tracing_off_by_default(offline, user_client):
    body = user_client.post("/api/v1/agent/run", {"message": "hi"}, format="json").json()
    assert body["trace_id"] is None
    assert AgentRun.objects.get(pk=body["run_id"]).trace_id == ""
