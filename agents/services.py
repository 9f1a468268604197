"""Writes for agents: threads and the run record's lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from agents.checkpointer import get_checkpointer
from agents.errors import ThreadNotFound
from agents.models import AgentRun, AgentThread

TITLE_CHARS = 80


def _title_from(message: str) -> str:
    title = " ".join(message.split())
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


def thread_resolve_for_run(
    *, user: User, thread_id: uuid.UUID | None, first_message: str
) -> AgentThread:
    """The seed's thread rules: a new random thread unless the caller names one.

    A named thread of the caller's continues; an unknown id starts a thread with that id for the
    caller; another user's thread is not found (its existence is nobody else's business).
    """
    if thread_id is None:
        return AgentThread.objects.create(owner=user, title=_title_from(first_message))
    thread = AgentThread.objects.filter(pk=thread_id).first()
    if thread is None:
        # Memory left under this id by a deleted thread (whose receiver failed to delete it) is
        # nobody's now: never hand it over.
        thread_memory_delete(thread_id=thread_id)
        try:
            with transaction.atomic():
                return AgentThread.objects.create(
                    id=thread_id, owner=user, title=_title_from(first_message)
                )
        except IntegrityError:  # created concurrently
            thread = AgentThread.objects.get(pk=thread_id)
    if thread.owner_id != user.pk:
        raise ThreadNotFound()
    return thread


def run_start(
    *,
    user: User,
    thread: AgentThread,
    message: str,
    metadata: dict[str, Any],
    provider: str,
    model: str,
) -> AgentRun:
    run = AgentRun.objects.create(
        user=user,
        thread=thread,
        input=message,
        metadata=metadata,
        provider=provider,
        model=model,
        status=AgentRun.Status.RUNNING,
    )
    # Bump the thread's activity time so that thread lists show the latest conversation first.
    AgentThread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    return run


_FINISH_FIELDS = [
    "status", "response", "plan", "error", "latency_ms", "trace_id", "model",
    "prompt_tokens", "completion_tokens", "total_tokens", "tool_calls", "finished_at",
]  # fmt: skip


def run_finish(*, run: AgentRun, status: str, **fields: Any) -> AgentRun:
    """Record how a run ended. Only runs still ``running`` change: a finish is final."""
    for name, value in fields.items():
        setattr(run, name, value)
    run.status = status
    run.finished_at = timezone.now()
    values = {name: getattr(run, name) for name in _FINISH_FIELDS}
    AgentRun.objects.filter(pk=run.pk, status=AgentRun.Status.RUNNING).update(**values)
    return run


def thread_delete(*, thread: AgentThread) -> None:
    """Delete a thread and its runs; ``agents.signals`` deletes its memory with it."""
    thread.delete()


def thread_memory_delete(*, thread_id: uuid.UUID) -> None:
    """Delete a thread's checkpoints: the conversation memory LangGraph keeps under its id.

    The one place memory is deleted: after any thread deletion (``agents.signals``) and before
    an unknown thread id is adopted.
    """
    get_checkpointer().delete_thread(str(thread_id))


def thread_rename(*, thread: AgentThread, title: str) -> AgentThread:
    """Give a conversation a title of the owner's choosing (its activity time stays)."""
    AgentThread.objects.filter(pk=thread.pk).update(title=title)
    thread.title = title
    return thread
