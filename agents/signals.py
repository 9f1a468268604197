"""Signal receivers of the agents app, connected in ``AgentsConfig.ready``."""

from __future__ import annotations

import logging
from typing import Any

from agents import services
from agents.budget import token_usage_settle
from agents.models import AgentRun, AgentThread
from agents.selectors import utc_day_start

logger = logging.getLogger(__name__)


def thread_memory_forget(sender: type[AgentThread], instance: AgentThread, **kwargs: Any) -> None:
    """post_delete of a thread: however it goes (API, admin, ORM, a deleted user), its
    checkpoints go with it."""
    try:
        services.thread_memory_delete(thread_id=instance.id)
    except Exception:  # the memory is purged again before its id is ever reused
        logger.exception("Could not delete checkpoints of thread %s", instance.id)


def thread_pending_runs_release(
    sender: type[AgentThread], instance: AgentThread, **kwargs: Any
) -> None:
    """pre_delete of a thread: its runs still pending never run (their worker finds nothing),
    so the tokens they reserved on the budget are released here. (Running ones settle when
    they find their record gone.)"""
    pending = AgentRun.objects.filter(
        thread=instance, status=AgentRun.Status.PENDING, reserved_tokens__gt=0
    ).values_list("user_id", "created_at", "reserved_tokens")
    for user_id, created_at, reserved in pending:
        token_usage_settle(
            user_id=user_id, day=utc_day_start(created_at).date(), used=0, release=reserved
        )
