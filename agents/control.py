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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.utils import timezone

from agents import cancellation, metrics, services
from agents.budget import token_usage_settle
from agents.errors import AgentRunError, RunNotActive, ThreadBusy, ThreadNotFound
from agents.eventlog import get_event_log
from agents.models import AgentRun, AgentThread
from agents.selectors import utc_day_start

logger = logging.getLogger(__name__)

Status = AgentRun.Status
Strategy = AgentRun.Strategy


# -- admission ---------------------------------------------------------------------------------


def run_admit(
    *, thread: AgentThread, multitask_strategy: str, background: bool, **fields: Any
) -> AgentRun:
    """Record a new run of ``thread`` as its strategy says; inside the caller's transaction.

    ``fields`` are ``services.run_start``'s. The run is ``running`` when the thread is free and
    the caller executes it; ``pending`` otherwise (the background executor takes it, once the
    transaction commits).
    """
    if not AgentThread.objects.select_for_update().filter(pk=thread.pk).exists():
        raise ThreadNotFound()  # deleted meanwhile
    active = list(
        AgentRun.objects.filter(thread=thread, status__in=AgentRun.ACTIVE).values_list(
            "id", "status"
        )
    )
    if active and multitask_strategy == Strategy.REJECT:
        raise ThreadBusy()
    if active and multitask_strategy in (Strategy.INTERRUPT, Strategy.ROLLBACK):
        ids = [run_id for run_id, _status in active]
        AgentRun.objects.filter(pk__in=ids, cancel_requested="").update(
            cancel_requested=multitask_strategy
        )
        transaction.on_commit(lambda: _stop_superseded(ids, multitask_strategy))
    status = Status.RUNNING if not active and not background else Status.PENDING
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
    earlier = AgentRun.objects.filter(
        thread_id=run.thread_id, status=Status.PENDING, created_at__lt=run.created_at
    )
    if earlier.exists():
        return None  # an earlier run's end hands the thread on
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


def run_dispatch_next(*, thread_id: uuid.UUID) -> None:
    """Hand a thread whose run ended to its next pending run, if any."""
    following = (
        AgentRun.objects.filter(thread_id=thread_id, status=Status.PENDING)
        .order_by("created_at")
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
            _submit(str(run_id))
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


def embedded_runs_idle(timeout: float = 30.0) -> bool:
    """Wait until this process's background run threads have nothing left (tests, shutdown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _pool_lock:
            pending = [future for future in _futures if not future.done()]
            _futures.difference_update(f for f in list(_futures) if f.done())
        if not pending:
            return True
        time.sleep(0.05)
    return False


_futures: set[Future[None]] = set()


def _submit(run_id: str) -> None:
    future = _embedded_pool().submit(_execute_in_thread, run_id)
    with _pool_lock:
        _futures.difference_update(f for f in list(_futures) if f.done())
        _futures.add(future)


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


def run_ids_extra(run: AgentRun) -> dict[str, Any]:
    return {
        "status": run.status,
        "run_id": str(run.id),
        "thread_id": str(run.thread_id),
        "trace_id": run.trace_id or None,
    }


__all__ = [
    "embedded_runs_idle",
    "run_admit",
    "run_cancel",
    "run_claim",
    "run_dispatch",
    "run_dispatch_next",
    "run_execute_background",
    "run_wait",
]
