"""The stale-run sweeper: runs left ``running`` by a worker that died end as abandoned.

A run is finished by the process that executes it, in every outcome it can see; a process that
is killed (``kill -9``, an out-of-memory kill, a lost machine) sees none. ``run_sweep_stale``
ends every run still ``running`` ``AGENT_RUN_STALE_AFTER_SECONDS`` after it started (well past
the run's own deadline, ``AGENT_RUN_TIMEOUT_SECONDS``) as ``error`` with the error text
``abandoned: ...``, answers the tool calls it left open in the thread's memory (so the thread's
next turn works), counts its tokens if they are known, releases its token reservation and hands
its thread to the next run queued on it.

A ``pending`` run is no process's yet, so none can have abandoned it: however long it waits
behind its thread's earlier runs, it is not swept. A pending run whose wake-up was lost with a
process is handed to the executor again (``run_kick_waiting``).

It runs from ``manage.py sweep_runs``, from Celery beat in production (``agents.tasks``), when a
Celery worker starts, and in every app server process: once when it starts, then every
``AGENT_RUN_SWEEP_INTERVAL_SECONDS`` (``sweep_in_background``, started by ``config.asgi``).
Sweeping is idempotent: a run is claimed by a conditional update, so concurrent sweepers end
each run once.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.budget import token_usage_settle
from agents.models import AgentRun
from agents.selectors import utc_day_start

logger = logging.getLogger(__name__)

ABANDONED = "abandoned"


@dataclass(frozen=True)
class SweptRun:
    id: str
    thread_id: str
    user_id: str
    created_at: str
    ended: bool  # False on a dry run


def run_sweep_stale(
    *, older_than: timedelta | None = None, dry_run: bool = False, limit: int = 1000
) -> list[SweptRun]:
    """End runs ``running`` for longer than ``older_than`` (default
    ``AGENT_RUN_STALE_AFTER_SECONDS``) as abandoned; the runs it ended (or would end)."""
    from agents.runner import thread_repair_for_run

    age = older_than if older_than is not None else _stale_after()
    cutoff = timezone.now() - age
    stale = (
        # Aged from its start: the time a run waited in its thread's queue is not running time.
        AgentRun.objects.filter(status=AgentRun.Status.RUNNING)
        .annotate(running_since=Coalesce("started_at", "created_at"))
        .filter(running_since__lt=cutoff)
        .select_related("user")
        .order_by("created_at")[:limit]
    )
    swept: list[SweptRun] = []
    for run in stale:
        if not dry_run:
            # Repaired first: once a run reads as ended, its thread takes the next turn.
            # (Repairing twice is harmless: the second finds no open call.)
            thread_repair_for_run(run=run)
        ended = not dry_run and _end(run, age)
        if dry_run or ended:
            swept.append(
                SweptRun(
                    id=str(run.id),
                    thread_id=str(run.thread_id),
                    user_id=str(run.user_id),
                    created_at=run.created_at.isoformat(),
                    ended=ended,
                )
            )
    return swept


def _stale_after() -> timedelta:
    return timedelta(seconds=float(settings.AGENT_RUN_STALE_AFTER_SECONDS))


def _end(run: AgentRun, age: timedelta) -> bool:
    """Claim and end one run; False when it finished (or was swept) meanwhile."""
    now = timezone.now()
    error = (
        f"{ABANDONED}: still running {int(age.total_seconds())} s after it started; "
        "the process executing it stopped"
    )
    claimed = AgentRun.objects.filter(pk=run.pk, status=AgentRun.Status.RUNNING).update(
        status=AgentRun.Status.ERROR,
        error=error,
        finished_at=now,
        latency_ms=int((now - run.created_at).total_seconds() * 1000),
    )
    if not claimed:
        return False
    token_usage_settle(
        user_id=run.user_id,
        day=utc_day_start(run.created_at).date(),
        used=int(run.total_tokens or 0),
        release=int(run.reserved_tokens or 0),
    )
    logger.warning(
        "Run %s ended as abandoned",
        run.id,
        extra={"event": "agent_run_abandoned", "run_id": str(run.id)},
    )
    from agents.control import run_dispatch_next

    run_dispatch_next(thread_id=run.thread_id)  # its thread's next run may start
    return True


def run_kick_waiting(*, older_than: timedelta = timedelta(seconds=60)) -> int:
    """Hand pending runs that waited ``older_than`` to the executor again: a wake-up lost with
    a process that died between a run's end and the next one's start. Claiming is idempotent,
    so a run already on its way is not executed twice. How many it handed on."""
    from agents.control import run_dispatch

    cutoff = timezone.now() - older_than
    waiting = AgentRun.objects.filter(
        status=AgentRun.Status.PENDING, created_at__lt=cutoff
    ).order_by("created_at")
    busy = set(
        AgentRun.objects.filter(status=AgentRun.Status.RUNNING).values_list("thread_id", flat=True)
    )
    kicked, seen = 0, set[object]()
    for run in waiting[:1000]:
        if run.thread_id in busy or run.thread_id in seen:
            continue
        seen.add(run.thread_id)
        run_dispatch(run_id=run.id)
        kicked += 1
    return kicked


def run_sweep_safely() -> int:
    """One sweep that never raises (a background loop's): how many runs it ended."""
    try:
        close_old_connections()
        ended = len(run_sweep_stale())
        run_kick_waiting()
        from agents.control import approvals_close_expired

        approvals_close_expired()  # approvals nobody decided on in time: closed as rejected
        return ended
    except DatabaseError as exc:  # the database is away or dropped us: the next sweep retries
        logger.warning("Sweeping stale runs failed: %s: %s", type(exc).__name__, exc)
        connection.close()
        pool = getattr(connection, "pool", None)
        if pool is not None:
            pool.check()
        return 0
    except Exception:
        logger.exception("Sweeping stale runs failed")
        return 0
    finally:
        connections.close_all()


_started: dict[str, int | None] = {"pid": None}
_started_lock = threading.Lock()


def sweep_in_background() -> None:
    """Sweep in a daemon thread of this process: now, then every
    ``AGENT_RUN_SWEEP_INTERVAL_SECONDS`` (0: only now). Once per process; never with
    ``AGENT_RUN_SWEEP_IN_PROCESS`` off."""
    if not settings.AGENT_RUN_SWEEP_IN_PROCESS:
        return
    with _started_lock:
        if _started["pid"] == os.getpid():
            return
        _started["pid"] = os.getpid()
    interval = float(settings.AGENT_RUN_SWEEP_INTERVAL_SECONDS)

    def loop() -> None:
        while True:
            run_sweep_safely()
            if interval <= 0:
                return
            threading.Event().wait(interval)

    threading.Thread(target=loop, name="agent-run-sweeper", daemon=True).start()
