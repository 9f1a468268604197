"""Run control: runs as first-class objects that outlive the request that started them.

- **Admission** (``run_admit``, in ``agents.runner.agent_run_start``'s transaction): the thread's
  row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken at the
  start of every transaction), so two requests at the same instant are decided one after the
  other, in any process. A free thread starts the run at once (``running``), or ``pending`` for
  the background executor; a busy one (a run ``pending`` or ``running``) follows the new run's
  ``multitask_strategy``: ``reject`` (409 ``thread_busy``), ``enqueue`` (``pending``, after the
  others), ``interrupt`` or ``rollback`` (the active runs are asked to stop, the new one waits
  for them). Behind the lock, a partial unique index keeps one run ``running`` per thread.
- **The queue**: a thread's pending runs execute one at a time, oldest first. A run is claimed
  (``run_claim``: ``pending`` → ``running``) only when it is its thread's oldest pending run and
  no other run of the thread runs; whoever ends a run hands the thread to the next pending one
  (``run_dispatch_next``), so nothing waits on a timer.
- **The background executor** (``run_dispatch``): a Celery worker (``agents.tasks.execute_run``)
  in production, a thread pool of the app's own process on the embedded default
  (``AGENT_RUNS_BACKEND``). Its runs publish their events to the run's event log
  (``agents.eventlog``), which any replica serves to clients that join.
- **Cancel** (``run_cancel``): a pending run ends at once; a running one is asked to stop
  (``AgentRun.cancel_requested``) and stops at its next model token or tool boundary, wherever
  it executes (``agents.cancellation``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents import cancellation, metrics, services
from agents.budget import token_usage_settle
from agents.errors import (
    AgentRunError,
    RunNotActive,
    RunNotInterrupted,
    ThreadBusy,
    ThreadInterrupted,
    ThreadNotFound,
)
from agents.eventlog import get_event_log
from agents.models import AgentRun, AgentThread
from agents.selectors import utc_day_start

logger = logging.getLogger(__name__)

Status = AgentRun.Status
Strategy = AgentRun.Strategy
Decision = AgentRun.Decision


# -- admission ---------------------------------------------------------------------------------


def run_admit(
    *, thread: AgentThread, multitask_strategy: str, background: bool, **fields: Any
) -> AgentRun:
    """Record a new run of ``thread`` as its strategy says; inside the caller's transaction.

    ``fields`` are ``services.run_start``'s. The run is ``running`` when the thread is free and
    the caller executes it; ``pending`` otherwise (the background executor takes it, once the
    transaction commits). A run interrupted for approval holds its thread too: ``reject``
    answers 409 ``thread_interrupted``, ``interrupt`` and ``rollback`` close it as superseded
    (its calls rejected; for ``rollback`` its turn removed), ``enqueue`` waits for its decision.
    """
    if not AgentThread.objects.select_for_update().filter(pk=thread.pk).exists():
        raise ThreadNotFound()  # deleted meanwhile
    active, paused = _thread_holds(thread.pk)
    if multitask_strategy == Strategy.REJECT and active:
        raise ThreadBusy()
    if multitask_strategy == Strategy.REJECT and paused:
        raise ThreadInterrupted()
    if multitask_strategy in (Strategy.INTERRUPT, Strategy.ROLLBACK):
        if active:
            AgentRun.objects.filter(pk__in=active, cancel_requested="").update(
                cancel_requested=multitask_strategy
            )
            transaction.on_commit(lambda: _stop_superseded(active, multitask_strategy))
        for run_id in paused:
            _approval_close(
                run_id,
                decision=Decision.SUPERSEDED,
                rollback=(multitask_strategy == Strategy.ROLLBACK),
            )
        paused = []
    waits = bool(active or paused)
    status = Status.RUNNING if not waits and not background else Status.PENDING
    run = services.run_start_exclusive(
        thread=thread,
        status=status,
        background=status == Status.PENDING,
        multitask_strategy=multitask_strategy,
        **fields,
    )
    if status == Status.PENDING:
        metrics.run_queued()
        transaction.on_commit(lambda: run_dispatch(run_id=run.id))
    return run


def _thread_holds(thread_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Under the thread's lock, in one query: its runs in progress, and its interrupted runs
    still waiting for a decision, those whose approval expired closed first (as
    ``approvals_close_expired`` does for the thread)."""
    hours = float(settings.AGENT_APPROVAL_TTL_HOURS)
    expired_before = timezone.now() - timedelta(hours=hours) if hours > 0 else None
    rows = AgentRun.objects.filter(
        Q(status__in=AgentRun.ACTIVE) | Q(status=Status.INTERRUPTED, decision=""),
        thread_id=thread_id,
    ).values_list("id", "status", "finished_at")
    active: list[uuid.UUID] = []
    paused: list[uuid.UUID] = []
    for run_id, status, finished_at in rows:
        if status != Status.INTERRUPTED:
            active.append(run_id)
        elif expired_before and finished_at is not None and finished_at < expired_before:
            _approval_close(run_id, decision=Decision.EXPIRED)  # decided either way: no hold
        else:
            paused.append(run_id)
    return active, paused


def run_admit_resume(
    *, interrupted: AgentRun, resume: dict[str, Any], background: bool, **fields: Any
) -> AgentRun:
    """Record the run that continues ``interrupted`` with a person's decision; inside the
    caller's transaction. ``RunNotInterrupted`` (409) when the run is not waiting for one (or
    was resumed already: the decision is taken once, by a conditional update)."""
    AgentThread.objects.select_for_update().filter(pk=interrupted.thread_id).exists()
    decided = AgentRun.objects.filter(
        pk=interrupted.pk, status=Status.INTERRUPTED, decision=""
    ).update(decision=resume["decision"])
    if not decided:
        raise RunNotInterrupted()
    interrupted.decision = resume["decision"]
    metrics.approval_decided(decision=resume["decision"])
    # It goes before the runs queued behind the interruption; only a running run (none, while
    # the thread waited) could make it wait.
    running = AgentRun.objects.filter(thread_id=interrupted.thread_id, status=Status.RUNNING)
    status = Status.PENDING if background or running.exists() else Status.RUNNING
    run = services.run_start_exclusive(
        thread=interrupted.thread,
        status=status,
        background=status == Status.PENDING,
        resumed_from=interrupted,
        resume=resume,
        **fields,
    )
    if status == Status.PENDING:
        metrics.run_queued()
        transaction.on_commit(lambda: run_dispatch(run_id=run.id))
    return run


def _stop_superseded(ids: list[uuid.UUID], mode: str) -> None:
    """The runs a newer run interrupts or rolls back: pending ones end now, running ones stop
    at their next boundary."""
    for run in AgentRun.objects.filter(pk__in=ids, status__in=AgentRun.ACTIVE):
        with contextlib.suppress(RunNotActive):  # it ended meanwhile
            run_cancel(run=run, mode=mode)


# -- the queue -------------------------------------------------------------------------------


def run_claim(*, run_id: uuid.UUID | str) -> AgentRun | None:
    """Take a pending run for execution: the run, now ``running``; None when it is not (yet)
    its turn, or it was taken, cancelled or deleted meanwhile."""
    run = AgentRun.objects.filter(pk=run_id).select_related("user").first()
    if run is None or run.status != Status.PENDING:
        return None
    if run.resumed_from_id is None and _waits(run):
        return None  # an earlier run's end (or an approval's decision) hands the thread on
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = AgentRun.objects.filter(pk=run.pk, status=Status.PENDING).update(
                status=Status.RUNNING, started_at=now
            )
    except IntegrityError:  # another run of the thread is running: its end hands it on
        return None
    if not claimed:
        return None
    run.status, run.started_at = Status.RUNNING, now
    metrics.run_dequeued(wait_s=(now - run.created_at).total_seconds())
    return run


def _waits(run: AgentRun) -> bool:
    """Whether a pending run must let others go first: an earlier pending run, a resume of an
    interrupted run, or an interrupted run still waiting for its decision."""
    thread_runs = AgentRun.objects.filter(thread_id=run.thread_id)
    return (
        thread_runs.filter(status=Status.PENDING, created_at__lt=run.created_at).exists()
        or thread_runs.filter(status=Status.PENDING, resumed_from__isnull=False).exists()
        or thread_runs.filter(status=Status.INTERRUPTED, decision="").exists()
    )


def run_dispatch_next(*, thread_id: uuid.UUID) -> None:
    """Hand a thread whose run ended to its next pending run, if any (a resume first)."""
    following = (
        AgentRun.objects.filter(thread_id=thread_id, status=Status.PENDING)
        .order_by(F("resumed_from").asc(nulls_last=True), "created_at")
        .values_list("id", flat=True)
        .first()
    )
    if following is not None:
        run_dispatch(run_id=following)


def run_dispatch(*, run_id: uuid.UUID | str) -> None:
    """Hand a pending run to the background executor (which claims it when it is its turn).

    Never raises: the run is recorded already, and a broker that cannot be reached leaves it
    pending, for the sweeper to hand on again (``agents.sweeper.run_kick_waiting``) rather than
    failing the request that started it, or the cancel or the end of the run before it."""
    try:
        if settings.AGENT_RUNS_BACKEND == "celery":
            from agents.tasks import execute_run

            execute_run.delay(str(run_id))
        else:
            _embedded_pool().submit(_execute_in_thread, str(run_id))
    except Exception as exc:
        logger.warning(
            "Could not hand run %s to the background executor (%s: %s); it stays pending "
            "until the sweeper hands it on again",
            run_id,
            type(exc).__name__,
            exc,
            extra={"event": "agent_run_dispatch_failed", "run_id": str(run_id)},
        )


def run_execute_background(*, run_id: uuid.UUID | str) -> AgentRun | None:
    """Claim and execute a pending run, its events published to its log; the finished run, or
    None when it was not this call's to execute. A failure is recorded on the run."""
    from agents.runner import agent_run_events

    run = run_claim(run_id=run_id)
    if run is None:
        return None
    try:
        for _event in agent_run_events(run=run, tokens=True):
            pass
    except AgentRunError:
        pass  # recorded on the run, and published as its error event
    return run


_pool_lock = threading.Lock()
_pool: dict[str, Any] = {"pool": None, "pid": None}


def _embedded_pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if _pool["pool"] is None or _pool["pid"] != os.getpid():
            _pool["pool"] = ThreadPoolExecutor(
                max_workers=max(1, int(settings.AGENT_RUNS_EMBEDDED_WORKERS)),
                thread_name_prefix="agent-run",
            )
            _pool["pid"] = os.getpid()
        pool: ThreadPoolExecutor = _pool["pool"]
        return pool


def _execute_in_thread(run_id: str) -> None:
    close_old_connections()
    try:
        run_execute_background(run_id=run_id)
    except Exception:
        logger.exception("Background run %s crashed", run_id)
    finally:
        connections.close_all()


# -- cancel ------------------------------------------------------------------------------------


def run_cancel(*, run: AgentRun, mode: str = "cancel") -> AgentRun:
    """Stop ``run``: a pending one ends now as ``cancelled``; a running one is asked to stop,
    wherever it executes, and ends at its next model token or tool boundary. ``RunNotActive``
    (409) when it has ended already. The run, as it is now."""
    if run.status == Status.PENDING and _pending_end(run, reason=cancellation.REASONS[mode]):
        return run
    asked = AgentRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(cancel_requested=mode)
    if not asked:
        run.refresh_from_db()
        if run.status == Status.PENDING:  # claimed and given back? (never): try once more
            return run_cancel(run=run, mode=mode)
        raise RunNotActive()
    run.status, run.cancel_requested = Status.RUNNING, mode
    cancellation.stop_here(str(run.id), mode)
    return run


def _pending_end(run: AgentRun, *, reason: str) -> bool:
    """End a pending run as cancelled, before it ran; False when it is not pending any more."""
    now = timezone.now()
    error = f"cancelled: {reason}"
    with transaction.atomic():
        ended = AgentRun.objects.filter(pk=run.pk, status=Status.PENDING).update(
            status=Status.ERROR, error=error, finished_at=now
        )
        if ended:
            token_usage_settle(
                user_id=run.user_id,
                day=utc_day_start(run.created_at).date(),
                used=0,
                release=int(run.reserved_tokens or 0),
            )
    if not ended:
        return False
    run.status, run.error, run.finished_at = Status.ERROR, error, now
    metrics.run_dequeued(wait_s=None)
    get_event_log().publish(
        str(run.id), "error", {"detail": reason, "code": "cancelled", "run_id": str(run.id)}
    )
    run_dispatch_next(thread_id=run.thread_id)
    return True


# -- approvals: closing interrupted runs nobody resumed ----------------------------------------


def approval_expires_at(run: AgentRun) -> datetime | None:
    """When an interrupted run's approval expires (``AGENT_APPROVAL_TTL_HOURS``; None: never)."""
    hours = float(settings.AGENT_APPROVAL_TTL_HOURS)
    if hours <= 0 or run.finished_at is None:
        return None
    return run.finished_at + timedelta(hours=hours)


def approvals_close_expired(*, thread_id: uuid.UUID | None = None, limit: int = 500) -> int:
    """Close interrupted runs whose approval expired as rejected (``expired``): on the next
    access to their thread, and by the periodic sweep (all threads). How many it closed."""
    hours = float(settings.AGENT_APPROVAL_TTL_HOURS)
    if hours <= 0:
        return 0
    due = AgentRun.objects.filter(
        status=Status.INTERRUPTED,
        decision="",
        finished_at__lt=timezone.now() - timedelta(hours=hours),
    )
    if thread_id is not None:
        due = due.filter(thread_id=thread_id)
    closed = 0
    for run_id in due.values_list("id", flat=True)[:limit]:
        closed += _approval_close(run_id, decision=Decision.EXPIRED)
    return closed


def approval_expire_if_due(run: AgentRun) -> AgentRun:
    """``run``, closed as expired first if it waited for a decision past its time."""
    expires = approval_expires_at(run)
    if run.awaiting_decision and expires is not None and expires <= timezone.now():
        _approval_close(run.id, decision=Decision.EXPIRED)
        run.refresh_from_db()
    return run


_CLOSED_REASONS: dict[str, str] = {
    Decision.EXPIRED: "rejected: nobody approved this call in time",
    Decision.SUPERSEDED: "rejected: a newer message replaced the request for approval",
}


def _approval_close(run_id: uuid.UUID, *, decision: str, rollback: bool = False) -> bool:
    """Close an interrupted run without running its calls: they are answered as rejected in
    the thread's memory (or, ``rollback``, its turn removed), so that the thread goes on."""
    from agents.runner import thread_repair_for_run, thread_rollback_for_run

    closed = AgentRun.objects.filter(pk=run_id, status=Status.INTERRUPTED, decision="").update(
        decision=decision
    )
    if not closed:
        return False
    metrics.approval_decided(decision=decision)
    run = AgentRun.objects.select_related("user").get(pk=run_id)
    if rollback:
        thread_rollback_for_run(run=run)
    else:
        thread_repair_for_run(run=run, reason=_CLOSED_REASONS[decision], code="rejected")
    logger.info(
        "Interrupted run %s closed: %s",
        run_id,
        decision,
        extra={"event": "agent_approval_closed", "run_id": str(run_id), "decision": decision},
    )
    transaction.on_commit(lambda: run_dispatch_next(thread_id=run.thread_id))
    return True


# -- waiting for a run -----------------------------------------------------------------------


def run_wait(*, run: AgentRun, timeout: float) -> AgentRun:
    """Block until ``run`` has ended or ``timeout`` seconds passed; the run as it is then.

    Woken by the run's event log (its last event), checked against the database."""
    deadline = time.monotonic() + max(timeout, 0.0)
    log = get_event_log()
    after: str | None = None
    while True:
        run.refresh_from_db()
        remaining = deadline - time.monotonic()
        if run.status in AgentRun.FINISHED or remaining <= 0:
            return run
        try:
            events = async_to_sync(log.follow)(str(run.id), after, wait_seconds=min(remaining, 1.0))
        except Exception as exc:  # the log is away: the database still says when it ends
            logger.warning("Waiting on run %s's events failed: %s", run.id, exc)
            time.sleep(min(remaining, 0.5))
            continue
        if events:
            after = events[-1].id
        connections["default"].close_if_unusable_or_obsolete()
