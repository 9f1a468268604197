"""Celery tasks of the agents app (production runs a Celery worker and beat).

``sweep_runs`` is scheduled by ``CELERY_BEAT_SCHEDULE`` (``config/settings/agent.py``) and runs
once more whenever a worker starts (``worker_ready``), so runs abandoned by a crash end soon
after the service comes back.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from agents.sweeper import run_sweep_safely, run_sweep_stale


@shared_task(name="agents.tasks.sweep_runs", ignore_result=True)
def sweep_runs() -> int:
    """End stale ``running`` runs as abandoned; how many it ended."""
    return len(run_sweep_stale())


@worker_ready.connect
def sweep_runs_when_worker_starts(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts sweeps at once, in its own process (a failure is logged)."""
    run_sweep_safely()
