"""gunicorn configuration of the production server (the Docker image's command).

    gunicorn config.asgi:application -c docker/gunicorn.conf.py

Everything here can be overridden on the command line or through the environment:

- ``GUNICORN_BIND`` (``0.0.0.0:8000``; ``PORT`` alone changes the port).
- ``WEB_CONCURRENCY``: worker processes. Default: ``2 x cores + 1``, cores counted as this
  container may use them (CPU affinity and the cgroup quota, not the host's). Every worker is
  an asyncio event loop (uvicorn) that serves many requests and streams at once; it also holds a
  database pool of up to ``DATABASE_POOL_MAX_SIZE`` connections.
- ``GUNICORN_TIMEOUT`` (120 s): a worker whose event loop has not checked in for that long is
  killed and replaced. Requests are not limited by it: an LLM call or an open SSE stream keeps
  the loop free.
- ``GUNICORN_GRACEFUL_TIMEOUT`` (120 s): on SIGTERM (a deploy, ``docker compose stop``, a
  Kubernetes pod ending) workers stop accepting, finish the runs and streams in flight for at
  most that long, then exit. Keep the orchestrator's stop timeout above it.
- ``GUNICORN_KEEPALIVE`` (75 s): longer than a load balancer's idle timeout (60 s on most), so
  that the balancer, not us, closes idle connections.
- ``GUNICORN_MAX_REQUESTS`` (0: never): recycle a worker after that many requests (+ jitter).
- ``FORWARDED_ALLOW_IPS`` (``127.0.0.1,::1``): the proxies whose ``X-Forwarded-For`` /
  ``X-Forwarded-Proto`` are trusted (client IP for rate limits, https for secure cookies).

Startup: every worker runs the ``startup`` system checks (``config/checks.py``) once the app is
loaded; one failure stops the whole server with the check's message (gunicorn exits with status
3, "Worker failed to boot") instead of answering 500 page by page.

Prometheus multi-process mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, every worker writes its
metric values to files in that directory and ``GET /metrics`` adds them up, whichever worker
answers. The master empties the directory when it starts (values of an earlier run would count
again) and marks a worker dead when it exits, so that ``agent_active_executions`` (``livesum``)
forgets it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def available_cores() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"
worker_class = "config.server.UvicornWorker"
workers = _env_int("WEB_CONCURRENCY", 2 * available_cores() + 1)
timeout = _env_int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 120)
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# The app logs one JSON line per request itself (config.access); gunicorn's would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# /tmp may be a disk in a container; the heartbeat files belong in memory where there is one.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
proc_name = "django-agents"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl): two
# servers on one host would fight over it. On only where asked for, at a path of its own.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")


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


def post_worker_init(worker: Any) -> None:
    """The app is loaded (Django is set up): run the startup checks before serving."""
    from config.checks import startup_errors

    errors = startup_errors()
    if errors:
        details = "\n".join("  " + error.replace("\n", "\n  ") for error in errors)
        worker.log.error("The server cannot start:\n%s", details)
        sys.exit(3)  # gunicorn's "worker failed to boot": the master stops, not retries


def child_exit(server: Any, worker: Any) -> None:
    if _multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
