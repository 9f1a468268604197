"""The Celery app: ``celery -A config worker`` (evaluation jobs) and ``celery -A config beat``.

Settings come from Django's, prefixed ``CELERY_`` (``config.settings.celery``); tasks are found
in each app's ``tasks.py``.

With ``WORKER_METRICS_PORT`` set, the worker serves its Prometheus metrics (judge calls and
scores of the jobs it runs) on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT``: the backend's
``/metrics`` cannot see them, they are counted in the worker's processes. The pool's processes
are added up through ``PROMETHEUS_MULTIPROC_DIR`` (the Docker image sets it; give the worker a
directory of its own, empty at start), else the worker must run one process (``--pool solo`` or
``threads``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _serve_metrics(**kwargs: Any) -> None:
    """The worker's /metrics, in its main process (started once the pool is up)."""
    from django.conf import settings
    from prometheus_client import start_http_server

    from config.metrics_view import registry

    port = int(getattr(settings, "WORKER_METRICS_PORT", 0) or 0)
    if not port:
        return
    host = settings.WORKER_METRICS_HOST
    start_http_server(port, addr=host, registry=registry())
    logging.getLogger(__name__).info("Worker metrics on http://%s:%s/metrics", host, port)


@worker_process_shutdown.connect
def _forget_process(pid: int | None = None, **kwargs: Any) -> None:
    """A pool process that exits: its live gauges stop counting (counters are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
