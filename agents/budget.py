"""The per-user daily token budget: ``AGENT_DAILY_TOKEN_BUDGET`` tokens a UTC day (0: off).

Counted on a ledger, ``TokenUsage`` (one row per user and UTC day), not from the stored runs:
deleting threads and their runs leaves the day's usage as it was. A run reserves
``AGENT_RUN_TOKEN_RESERVE`` tokens before it starts (``token_usage_reserve``, called by
``agents.runner.agent_run_start``, so every caller is bound by it) and settles to the tokens the
LLM reported when it ends (``token_usage_settle``), whatever the outcome; a run that never
started releases its reservation (``token_usage_release``).

The bound: a run starts only while its reservation fits in what is neither used nor reserved;
when less than a reservation is left, one run may start alone and reserves the rest. So the
day's usage exceeds the limit only by what runs use beyond their reservation: with runs that
use at most ``AGENT_RUN_TOKEN_RESERVE`` tokens, never more than the limit plus one run's worth.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from agents import selectors
from agents.errors import TokenBudgetExceeded
from agents.models import TokenUsage
from config.metrics import RATELIMIT_REJECTIONS


def seconds_until_utc_midnight(now: datetime | None = None) -> int:
    now = now or timezone.now()
    tomorrow = selectors.utc_day_start(now) + timedelta(days=1)
    return max(math.ceil((tomorrow - now).total_seconds()), 1)


def token_budget(user: User) -> dict[str, int | None]:
    """``{"daily_limit", "used_today", "remaining"}``; limit and remaining are None when off.

    ``remaining`` leaves out what runs in progress have reserved."""
    limit = int(settings.AGENT_DAILY_TOKEN_BUDGET)
    used, reserved = selectors.token_usage_today(user=user)
    if limit <= 0:
        return {"daily_limit": None, "used_today": used, "remaining": None}
    return {"daily_limit": limit, "used_today": used, "remaining": max(limit - used - reserved, 0)}


def _refuse(*, limit: int, used: int, held: bool) -> TokenBudgetExceeded:
    RATELIMIT_REJECTIONS.labels(scope="token_budget").inc()
    retry_after = 5 if held else seconds_until_utc_midnight()
    return TokenBudgetExceeded(limit=limit, used=used, retry_after=retry_after, held=held)


def token_usage_reserve(*, user: User) -> int:
    """Reserve a run's tokens on today's ledger; the amount reserved (0 with no budget).

    Raises ``TokenBudgetExceeded`` (429) when the budget is used up, or what is left of it is
    reserved by the user's runs in progress. The day's row is locked while it is read and
    written, so concurrent starts, in any process, see each other's reservations.
    """
    limit = int(settings.AGENT_DAILY_TOKEN_BUDGET)
    if limit <= 0:
        return 0
    estimate = max(int(settings.AGENT_RUN_TOKEN_RESERVE), 1)
    day = selectors.utc_day_start().date()
    with transaction.atomic():
        TokenUsage.objects.get_or_create(user=user, day=day)
        row = TokenUsage.objects.select_for_update().get(user=user, day=day)
        if row.used >= limit:
            raise _refuse(limit=limit, used=row.used, held=False)
        free = limit - row.used - row.reserved
        if free >= estimate:
            amount = estimate
        elif row.reserved == 0:
            amount = limit - row.used  # alone: the run may use the rest
        else:
            raise _refuse(limit=limit, used=row.used, held=True)
        TokenUsage.objects.filter(pk=row.pk).update(reserved=F("reserved") + amount)
    return amount


def token_usage_settle(*, user_id: uuid.UUID | str, day: date, used: int, release: int) -> None:
    """Count ``used`` tokens on the user's ledger for ``day`` and release ``release`` of its
    reservation, in one atomic update (the row is created if the day has none)."""
    if used <= 0 and release <= 0:
        return
    rows = TokenUsage.objects.filter(user_id=user_id, day=day)
    changes = {
        "used": F("used") + max(used, 0),
        "reserved": Greatest(F("reserved") - max(release, 0), Value(0)),
    }
    if rows.update(**changes) == 0:
        TokenUsage.objects.get_or_create(user_id=user_id, day=day)
        rows.update(**changes)


def token_usage_release(*, user: User, tokens: int) -> None:
    """Give back a reservation of a run that did not start (a busy or unknown thread)."""
    day = selectors.utc_day_start().date()
    token_usage_settle(user_id=user.pk, day=day, used=0, release=tokens)


def check_token_budget(user: User) -> None:
    """Raise ``TokenBudgetExceeded`` if the user may not start another run today (no
    reservation: for callers that only ask)."""
    limit = int(settings.AGENT_DAILY_TOKEN_BUDGET)
    if limit <= 0:
        return
    used, _reserved = selectors.token_usage_today(user=user)
    if used >= limit:
        raise _refuse(limit=limit, used=used, held=False)
