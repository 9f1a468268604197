"""Celery tasks of the agents app (production runs a Celery worker and beat).

``execute_run`` executes a background run (``agents.control``): ``POST /api/v1/agent/runs``, a
run queued behind a busy thread, a stream that goes on after its client left. Delivered at
least once (late acknowledgement): a second delivery finds the run claimed and does nothing; a
worker killed mid-run leaves it ``running`` for the sweeper to end as abandoned.

``sweep_runs`` is scheduled by ``CELERY_BEAT_SCHEDULE`` (``config/settings/agent.py``) and runs
once more whenever a worker starts (``worker_ready``), so runs abandoned by a crash end soon
after the service comes back.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from agents.sweeper import run_kick_waiting, run_sweep_safely, run_sweep_stale


@shared_task(name="agents.tasks.execute_run", ignore_result=True)
def execute_run(run_id: str) -> None:
    """Claim and execute a pending run (nothing when it is not its turn or was taken)."""
    from agents.control import run_execute_background

    run_execute_background(run_id=run_id)


@shared_task(name="agents.tasks.sweep_runs", ignore_result=True)
def sweep_runs() -> int:
    """End stale ``running`` runs as abandoned, and hand runs whose wake-up was lost to the
    workers again (as the app processes' sweep does); how many it ended."""
    ended = len(run_sweep_stale())
    run_kick_waiting()
    return ended


@worker_ready.connect
def sweep_runs_when_worker_starts(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts sweeps at once, in its own process (a failure is logged)."""
    run_sweep_safely()
