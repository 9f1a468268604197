"""The per-user daily token budget: ``AGENT_DAILY_TOKEN_BUDGET`` tokens a UTC day (0: off).

Counted from the tokens the LLM reported for the user's runs (``AgentRun.total_tokens``) since
midnight UTC. A run is refused (429 ``token_budget_exceeded``) once the budget is used up: by
``agents.runner.agent_run_start``, so every caller is bound by it. A run that starts under budget
finishes, so concurrent runs can overshoot it by what they use.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from agents import selectors
from agents.errors import TokenBudgetExceeded
from config.metrics import RATELIMIT_REJECTIONS


def seconds_until_utc_midnight(now: datetime | None = None) -> int:
    now = now or timezone.now()
    tomorrow = selectors.utc_day_start(now) + timedelta(days=1)
    return max(math.ceil((tomorrow - now).total_seconds()), 1)


def token_budget(user: User) -> dict[str, int | None]:
    """``{"daily_limit", "used_today", "remaining"}``; limit and remaining are None when off."""
    limit = int(settings.AGENT_DAILY_TOKEN_BUDGET)
    used = selectors.tokens_used_today(user=user)
    if limit <= 0:
        return {"daily_limit": None, "used_today": used, "remaining": None}
    return {"daily_limit": limit, "used_today": used, "remaining": max(limit - used, 0)}


def check_token_budget(user: User) -> None:
    """Raise ``TokenBudgetExceeded`` if the user may not start another run today."""
    limit = int(settings.AGENT_DAILY_TOKEN_BUDGET)
    if limit <= 0:
        return
    used = selectors.tokens_used_today(user=user)
    if used >= limit:
        RATELIMIT_REJECTIONS.labels(scope="token_budget").inc()
        raise TokenBudgetExceeded(limit=limit, used=used, retry_after=seconds_until_utc_midnight())
