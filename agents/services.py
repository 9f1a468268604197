"""Writes for agents: threads and the run record's lifecycle."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import User
from agents.checkpointer import get_checkpointer
from agents.errors import RunDeleted, RunNotRecorded, ThreadBusy, ThreadNotFound
from agents.models import AgentRun, AgentThread

TITLE_CHARS = 80

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    reserved_tokens: int = 0,
    status: str = AgentRun.Status.RUNNING,
    background: bool = False,
    multitask_strategy: str = AgentRun.Strategy.REJECT,
    resumed_from: AgentRun | None = None,
    resume: dict[str, Any] | None = None,
) -> AgentRun:
    now = timezone.now()
    run = AgentRun.objects.create(
        user=user,
        thread=thread,
        input=message,
        metadata=metadata,
        provider=provider,
        model=model,
        status=status,
        reserved_tokens=reserved_tokens,  # reliability: the token ledger's reservation
        background=background,
        multitask_strategy=multitask_strategy,
        started_at=now if status == AgentRun.Status.RUNNING else None,
        resumed_from=resumed_from,  # approvals: the interrupted run this one continues
        resume=resume,
    )
    # Bump the thread's activity time so that thread lists show the latest conversation first.
    AgentThread.objects.filter(pk=thread.pk).update(updated_at=now)
    return run


_FINISH_FIELDS = [
    "status", "response", "plan", "error", "latency_ms", "trace_id", "model",
    "prompt_tokens", "completion_tokens", "total_tokens", "tool_calls", "finished_at",
    "interrupt",
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


# -- reliability: one run per thread, a finish that survives a dropped connection -------------

ONE_ACTIVE_RUN_CONSTRAINT = "run_one_active_per_thread"


def run_start_exclusive(*, thread: AgentThread, **fields: Any) -> AgentRun:
    """``run_start``, unless another run of ``thread`` is in progress: ``ThreadBusy`` (409).

    The database decides (a unique index on the thread of runs in progress), so two processes
    starting a run of one thread at once cannot both succeed.
    """
    try:
        with transaction.atomic():
            return run_start(thread=thread, **fields)
    except IntegrityError as exc:
        text = str(exc)
        if ONE_ACTIVE_RUN_CONSTRAINT in text or "agents_agentrun.thread_id" in text:
            raise ThreadBusy() from exc
        if not AgentThread.objects.filter(pk=thread.pk).exists():  # deleted meanwhile
            raise ThreadNotFound() from exc
        raise


def _connection_lost_retry(write: Callable[[], T], *, what: str) -> T:
    """Do ``write``; if the database connection fails, close it, drop the pool's broken
    connections, and do it once more on a fresh one."""
    try:
        return write()
    except (OperationalError, InterfaceError) as exc:
        if connection.in_atomic_block:  # a transaction of the caller's: not ours to redo
            raise
        logger.warning("Database connection lost while %s (%s); retrying once", what, exc)
        connection.close()
        pool = getattr(connection, "pool", None)
        if pool is not None:
            pool.check()  # the pooled connections the server terminated with this one
        return write()


def run_finish_recorded(*, run: AgentRun, status: str, **fields: Any) -> AgentRun:
    """``run_finish``, and the run's tokens counted on the user's ledger, in one transaction.

    A dropped database connection is retried once on a fresh connection; if that fails too,
    ``RunNotRecorded`` (503, with the run's id; the sweeper ends the run later). When the run
    is gone (its thread was deleted while it ran) its tokens still count, and ``RunDeleted``
    (409 ``thread_deleted``) is raised. A run the sweeper ended first keeps the sweeper's
    record; only its tokens are added.
    """
    from agents.budget import token_usage_settle
    from agents.selectors import utc_day_start

    def write() -> Any:
        with transaction.atomic():
            run_finish(run=run, status=status, **fields)
            row = (
                AgentRun.objects.filter(pk=run.pk)
                .values("finished_at", "total_tokens", "reserved_tokens")
                .first()
            )
            tokens = int(run.total_tokens or 0)
            mine = row is None or row["finished_at"] == run.finished_at
            counted = 0 if mine or row is None else int(row["total_tokens"] or 0)
            token_usage_settle(
                user_id=run.user_id,
                day=utc_day_start(run.created_at).date(),
                used=tokens - counted,
                release=int(run.reserved_tokens or 0) if mine else 0,
            )
            return row

    try:
        row = _connection_lost_retry(write, what=f"finishing run {run.id}")
    except (OperationalError, InterfaceError) as exc:
        logger.error("Run %s could not be recorded: %s", run.id, exc)
        raise RunNotRecorded(extra=_run_ids(run)) from exc
    if row is None:
        if not AgentThread.objects.filter(pk=run.thread_id).exists():
            thread_memory_delete(thread_id=run.thread_id)  # what the run wrote after the delete
        raise RunDeleted(extra=_run_ids(run))
    return run


def _run_ids(run: AgentRun) -> dict[str, Any]:
    return {"status": "error", "run_id": str(run.id), "thread_id": str(run.thread_id)}
