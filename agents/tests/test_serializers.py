"""The output serializer of a finished run: the body of ``POST /agent/run`` and of ``done``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.serializers import RunResultSerializer
from agents.tests.factories import AgentRunFactory

pytestmark = pytest.mark.django_db


def body(run: Any) -> Any:
    # Through JSON, as a client receives it.
    return json.loads(json.dumps(RunResultSerializer(run).data))


def test_a_traced_run_answers_the_seed_body_with_who_answered_and_what_it_cost(
    settings: Any,
) -> None:
    settings.LANGFUSE_HOST = "https://langfuse.example.com"
    settings.LANGFUSE_PROJECT_ID = "proj-1"
    run = AgentRunFactory(trace_id="0af7651916cd43dd8448eb211c80319c")

    assert body(run) == {
        "response": f"You are {run.user.email}.",
        "thread_id": str(run.thread_id),
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "run_id": str(run.id),
        "latency_ms": 1234,
        "status": "success",
        "plan": "1. Call lookup_user_by_email with the caller's email.\n2. Answer.",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "trace_url": (
            "https://langfuse.example.com/project/proj-1/traces/0af7651916cd43dd8448eb211c80319c"
        ),
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        "interrupt": None,  # approvals: the calls waiting for one, when interrupted
    }
    assert list(RunResultSerializer(run).data) == [
        "response", "thread_id", "trace_id", "run_id", "latency_ms", "status", "plan",
        "provider", "model", "trace_url", "usage", "interrupt",
    ]  # fmt: skip


def test_an_untraced_run_without_a_plan_or_usage_answers_nulls() -> None:
    run = AgentRunFactory(
        trace_id="", plan="", prompt_tokens=None, completion_tokens=None, total_tokens=None
    )

    answered = body(run)

    assert answered["trace_id"] is None
    assert answered["trace_url"] is None
    assert answered["plan"] is None
    assert answered["usage"] == {
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
    }
