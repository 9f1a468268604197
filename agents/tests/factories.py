"""Factories for agent threads and runs."""

from __future__ import annotations

import json

import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, AgentThread


class AgentThreadFactory(factory.django.DjangoModelFactory[AgentThread]):
    class Meta:
        model = AgentThread

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")


def _tool_calls(run: AgentRun) -> list[dict[str, object]]:
    email = run.user.email
    return [
        {
            "name": "lookup_user_by_email",
            "args": {"email": email},
            "ok": True,
            "output": json.dumps({"user": {"email": email, "full_name": run.user.full_name}}),
            "duration_ms": 3.2,
        }
    ]


class AgentRunFactory(factory.django.DjangoModelFactory[AgentRun]):
    """A finished, successful run; the thread belongs to the run's user."""

    class Meta:
        model = AgentRun

    user = factory.SubFactory(UserFactory)
    thread = factory.SubFactory(AgentThreadFactory, owner=factory.SelfAttribute("..user"))
    input = factory.Sequence(lambda n: f"Question number {n}: who am I?")
    response = factory.LazyAttribute(lambda run: f"You are {run.user.email}.")
    plan = "1. Call lookup_user_by_email with the caller's email.\n2. Answer."
    status = AgentRun.Status.SUCCESS
    latency_ms = 1234
    provider = "openai"
    model = "gpt-4o-mini"
    prompt_tokens = 120
    completion_tokens = 30
    total_tokens = 150
    tool_calls = factory.LazyAttribute(_tool_calls)
    metadata = factory.LazyFunction(lambda: {"client": "tests"})
    finished_at = factory.LazyFunction(timezone.now)

    class Params:
        failed = factory.Trait(
            status=AgentRun.Status.ERROR,
            response="",
            error="llm_error: the provider returned 500",
            tool_calls=[],
        )
