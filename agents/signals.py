"""Signal receivers of the agents app, connected in ``AgentsConfig.ready``."""

from __future__ import annotations

import logging
from typing import Any

from agents import services
from agents.models import AgentThread

logger = logging.getLogger(__name__)


def thread_memory_forget(sender: type[AgentThread], instance: AgentThread, **kwargs: Any) -> None:
    """post_delete of a thread: however it goes (API, admin, ORM, a deleted user), its
    checkpoints go with it."""
    try:
        services.thread_memory_delete(thread_id=instance.id)
    except Exception:  # the memory is purged again before its id is ever reused
        logger.exception("Could not delete checkpoints of thread %s", instance.id)
