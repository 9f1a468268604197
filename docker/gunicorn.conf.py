"""gunicorn hooks for Prometheus multi-process mode (the command line sets everything else).

    gunicorn config.asgi:application -k uvicorn_worker.UvicornWorker -w 4 \\
        -c docker/gunicorn.conf.py

With ``PROMETHEUS_MULTIPROC_DIR`` in the environment, every worker writes its metric values to
files in that directory and ``GET /metrics`` adds them up, whichever worker answers. The master
empties the directory when it starts (values of an earlier run would count again) and marks a
worker dead when it exits, so that ``agent_active_executions`` (``livesum``) forgets it.
Without the variable these hooks do nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _multiproc_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return Path(value) if value else None


def on_starting(server: Any) -> None:
    directory = _multiproc_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if _multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
