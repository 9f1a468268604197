"""Celery tasks of the agents app (production runs a Celery worker and beat).

``execute_run`` executes a background run (``agents.control``): ``POST /api/v1/agent/runs``, a
run queued behind a busy thread, a stream that goes on after its client left. Delivered at
least once (late acknowledgement): a second delivery finds the run claimed and does nothing; a
worker killed mid-run leaves it ``running`` for the sweeper to end as abandoned.

``sweep_runs`` is scheduled by ``CELERY_BEAT_SCHEDULE`` (``config/settings/agent.py``) and runs
once more whenever a worker starts (``worker_ready``), so runs abandoned by a crash end soon
after the service comes back. ``prune_threads`` is scheduled daily when
``AGENT_THREAD_RETENTION_DAYS`` is above 0 (``config/settings/celery.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from agents.retention import thread_prune_inactive
from agents.sweeper import run_kick_waiting, run_sweep_safely, run_sweep_stale

logger = logging.getLogger(__name__)


@shared_task(name="agents.tasks.execute_run", ignore_result=True)
def execute_run(run_id: str) -> None:
    """Claim and execute a pending run (nothing when it is not its turn or was taken)."""
    from agents.control import run_execute_background

    run_execute_background(run_id=run_id)


@shared_task(name="agents.tasks.sweep_runs", ignore_result=True)
def sweep_runs() -> int:
    """End stale ``running`` runs as abandoned, hand runs whose wake-up was lost to the workers
    again (as the app processes' sweep does) and close expired approvals; how many runs it
    ended."""
    from agents.control import approvals_close_expired

    ended = len(run_sweep_stale())
    run_kick_waiting()
    approvals_close_expired()
    return ended


@worker_ready.connect
def sweep_runs_when_worker_starts(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts sweeps at once, in its own process (a failure is logged)."""
    run_sweep_safely()


@shared_task(name="agents.tasks.prune_threads", ignore_result=True)
def prune_threads() -> dict[str, Any]:
    """Retention: prune the threads inactive for ``AGENT_THREAD_RETENTION_DAYS`` with
    ``AGENT_THREAD_RETENTION_STRATEGY`` (0 days: keep everything); the summary."""
    days = settings.AGENT_THREAD_RETENTION_DAYS
    if days <= 0:
        return {}
    summary = thread_prune_inactive(
        older_than=timedelta(days=days), strategy=settings.AGENT_THREAD_RETENTION_STRATEGY
    )
    result = summary.as_dict()
    logger.info(
        "Retention (%s, %s days): %s thread(s), %s checkpoint(s), %s bytes removed; %s skipped",
        summary.strategy,
        days,
        summary.threads,
        summary.removed.checkpoints,
        summary.removed.bytes,
        summary.skipped,
        extra={
            "event": "thread_retention",
            "strategy": summary.strategy,
            "threads": summary.threads,
            "checkpoints": summary.removed.checkpoints,
            "bytes": summary.removed.bytes,
            "skipped": summary.skipped,
        },
    )
    return result
