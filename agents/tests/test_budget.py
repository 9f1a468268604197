"""The per-user daily token budget (``AGENT_DAILY_TOKEN_BUDGET``): counted from the tokens the
LLM reported on today's (UTC) runs, enforced before a run starts, shown on ``users/me``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import selectors
from agents.budget import seconds_until_utc_midnight, token_usage_settle
from agents.errors import TokenBudgetExceeded
from agents.models import AgentRun, AgentThread
from agents.runner import agent_run, agent_run_start

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
ME = "/api/v1/users/me"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline")]


def make_run(user: User, total_tokens: int | None, *, created_at: datetime | None = None) -> None:
    """A finished run of ``user`` and its tokens on the ledger, as the runner records them."""
    thread = AgentThread.objects.create(owner=user)
    run = AgentRun.objects.create(
        user=user, thread=thread, input="hi", status="success", total_tokens=total_tokens
    )
    if created_at is not None:
        AgentRun.objects.filter(pk=run.pk).update(created_at=created_at)
    day = selectors.utc_day_start(created_at).date()
    token_usage_settle(user_id=user.pk, day=day, used=total_tokens or 0, release=0)


def rejections() -> float:
    return REGISTRY.get_sample_value("ratelimit_rejections_total", {"scope": "token_budget"}) or 0


def test_tokens_used_today_sums_the_users_ledger_since_utc_midnight(user):
    make_run(user, 120)
    make_run(user, 30)
    make_run(user, None)  # the LLM reported nothing: counts 0
    make_run(user, 5000, created_at=selectors.utc_day_start() - timedelta(seconds=1))
    make_run(UserFactory(), 7000)
    assert selectors.tokens_used_today(user=user) == 150
    assert selectors.tokens_used_today(user=UserFactory()) == 0


def test_the_day_is_the_utc_day():
    now = datetime(2025, 3, 9, 23, 30, 15, tzinfo=UTC)
    assert selectors.utc_day_start(now) == datetime(2025, 3, 9, tzinfo=UTC)
    assert seconds_until_utc_midnight(now) == 29 * 60 + 45
    # Another time zone's wall clock doesn't move the UTC day.
    later = now.astimezone(timezone.get_fixed_timezone(120))  # 01:30 on the 10th there
    assert selectors.utc_day_start(later) == datetime(2025, 3, 9, tzinfo=UTC)
    assert seconds_until_utc_midnight(datetime(2025, 3, 9, tzinfo=UTC)) == 86_400


def test_a_run_over_budget_gets_429_and_starts_nothing(settings, user, user_client):
    settings.AGENT_DAILY_TOKEN_BUDGET = 50
    rejected_before = rejections()

    # Under budget, a run starts, and finishes whatever it uses.
    response = user_client.post(RUN, {"message": "hello"}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    used = response.json()["usage"]["total_tokens"]
    assert used > 50

    runs = AgentRun.objects.filter(user=user).count()
    response = user_client.post(RUN, {"message": "again"}, format="json")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == "token_budget_exceeded"
    assert "50" in body["detail"]
    retry_after = int(response["Retry-After"])
    assert abs(retry_after - seconds_until_utc_midnight()) <= 5
    assert 0 < retry_after <= 86_400
    # The rate limit still reports itself on the refusal.
    assert response["X-RateLimit-Limit"] == str(settings.RATE_LIMIT_PER_MINUTE)

    # The stream refuses too, as JSON, before any event.
    response = user_client.post(
        STREAM, {"message": "again"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "token_budget_exceeded"
    assert "Retry-After" in response

    assert AgentRun.objects.filter(user=user).count() == runs
    assert rejections() == rejected_before + 2


def test_the_budget_is_per_user_and_per_day(settings, user, user_client, client_for):
    settings.AGENT_DAILY_TOKEN_BUDGET = 1000
    make_run(user, 999)
    make_run(user, 100_000, created_at=selectors.utc_day_start() - timedelta(hours=1))
    # 999 of 1000: one more run may start.
    assert user_client.post(RUN, {"message": "hi"}, format="json").status_code == HTTPStatus.OK
    assert user_client.post(RUN, {"message": "hi"}, format="json").status_code == 429

    other = UserFactory()
    make_run(other, 1000)  # exactly used up
    assert client_for(other).post(RUN, {"message": "hi"}, format="json").status_code == 429
    fresh = client_for(UserFactory())
    assert fresh.post(RUN, {"message": "hi"}, format="json").status_code == HTTPStatus.OK


def test_no_budget_by_default(settings, user, user_client):
    assert settings.AGENT_DAILY_TOKEN_BUDGET == 0
    make_run(user, 10_000_000)
    assert user_client.post(RUN, {"message": "hi"}, format="json").status_code == HTTPStatus.OK


def test_me_shows_the_budget(settings, user, user_client):
    settings.AGENT_DAILY_TOKEN_BUDGET = 10_000
    assert user_client.get(ME).json()["token_budget"] == {
        "daily_limit": 10_000,
        "used_today": 0,
        "remaining": 10_000,
    }

    response = user_client.post(RUN, {"message": "hello"}, format="json")
    used = response.json()["usage"]["total_tokens"]
    make_run(user, 3000, created_at=selectors.utc_day_start() - timedelta(minutes=1))
    body = user_client.get(ME).json()
    assert body["email"] == user.email
    assert body["token_budget"] == {
        "daily_limit": 10_000,
        "used_today": used,
        "remaining": 10_000 - used,
    }

    make_run(user, 20_000)
    assert user_client.get(ME).json()["token_budget"]["remaining"] == 0

    settings.AGENT_DAILY_TOKEN_BUDGET = 0
    assert user_client.get(ME).json()["token_budget"] == {
        "daily_limit": None,
        "used_today": used + 20_000,
        "remaining": None,
    }
    # PATCH answers the same payload.
    response = user_client.patch(ME, {"full_name": "Budget Holder"}, format="json")
    assert response.json()["token_budget"]["used_today"] == used + 20_000


def test_the_budget_binds_every_caller_of_the_runner_not_only_the_api(settings, user):
    """A command or a background job that calls ``agent_run`` directly is refused too."""
    settings.AGENT_DAILY_TOKEN_BUDGET = 100
    make_run(user, 100)
    threads, runs = AgentThread.objects.count(), AgentRun.objects.count()
    rejected_before = rejections()

    with pytest.raises(TokenBudgetExceeded) as refused:
        agent_run(user=user, message="hello")
    with pytest.raises(TokenBudgetExceeded):
        agent_run_start(user=user, message="hello")

    assert refused.value.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.value.code == "token_budget_exceeded"
    assert "100" in refused.value.detail
    assert abs(int(refused.value.headers["Retry-After"]) - seconds_until_utc_midnight()) <= 5
    # Refused before anything is written: no thread, no run.
    assert (AgentThread.objects.count(), AgentRun.objects.count()) == (threads, runs)
    assert rejections() == rejected_before + 2

    # Another user runs as usual, and so does this one with the budget off.
    assert agent_run(user=UserFactory(), message="hello").status == AgentRun.Status.SUCCESS
    settings.AGENT_DAILY_TOKEN_BUDGET = 0
    assert agent_run(user=user, message="hello").status == AgentRun.Status.SUCCESS
