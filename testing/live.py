"""Start the real app in a server process for tests that need one (ASGI under uvicorn)."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Poll ``predicate`` (a database read, a file, a counter) until it is truthy; return that
    value, or fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(
    name: str,
    cmd: list[str],
    port: int,
    env: dict[str, str] | None,
    *,
    timeout: float,
    keep_log: bool,
    stop_timeout: float = 10.0,
) -> Iterator[str]:
    """Run ``cmd`` (a server listening on ``port``) until ``/healthz`` answers; yield its URL.

    Output goes to ``var/live-<name>-<port>.log``, removed afterwards unless ``keep_log`` (or
    ``KEEP_SERVER_LOGS=1`` in the environment, for debugging).
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_path = BASE_DIR / "var" / f"live-{name}-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=full_env, stdout=log, stderr=log)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {log_path.read_text()[-3000:]}")
                try:
                    httpx.get(f"{base_url}/healthz", timeout=1.0)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{name} did not start: {log_path.read_text()[-3000:]}"
                        ) from None
                    time.sleep(0.1)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not keep_log and os.environ.get("KEEP_SERVER_LOGS") != "1":
        log_path.unlink(missing_ok=True)


def server_log_path(base_url: str) -> Path:
    """Where ``run_server(..., keep_log=True)`` left the server's output."""
    return BASE_DIR / "var" / f"live-server-{base_url.rsplit(':', 1)[1]}.log"


@contextmanager
def run_server(
    env: dict[str, str] | None = None,
    *,
    app: str = "config.asgi:application",
    workers: int = 1,
    timeout: float = 30.0,
    keep_log: bool = False,
) -> Iterator[str]:
    """Serve the project with uvicorn on a free port; yields its base URL."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--http", "config.server:HttpProtocol",
    ]  # fmt: skip
    with _serve("server", cmd, port, env, timeout=timeout, keep_log=keep_log) as url:
        yield url


def database_env() -> dict[str, str]:
    """Environment that points a server process at the database the tests are using."""
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {
        "APP_ENV": "test",
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX,
        "AGENT_CHECKPOINT_SQLITE_PATH": settings.AGENT_CHECKPOINT_SQLITE_PATH,
    }
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{auth}@{host}:{port}/{db['NAME']}"
    return env


@contextmanager
def run_gunicorn(
    env: dict[str, str] | None = None,
    *,
    workers: int = 2,
    app: str = "config.asgi:application",
    timeout: float = 60.0,
    keep_log: bool = False,
) -> Iterator[str]:
    """Serve the project as production does (gunicorn with ``workers`` uvicorn workers of
    ``config.server`` and ``docker/gunicorn.conf.py``) on a free port; yields its base URL."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", app,
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--config", str(BASE_DIR / "docker" / "gunicorn.conf.py"), "--graceful-timeout", "5",
    ]  # fmt: skip
    with _serve(
        "gunicorn", cmd, port, env, timeout=timeout, keep_log=keep_log, stop_timeout=15.0
    ) as url:
        yield url


def fake_llm_env(llm_base_url: str, **extra: str) -> dict[str, str]:
    """``database_env()`` plus the settings that point a server at a fake OpenAI server."""
    return {
        **database_env(),
        "LLM_MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": llm_base_url,
        "OPENAI_API_KEY": "test-key",
        "LLM_MODEL_NAME": "gpt-test",
        "LLM_MAX_RETRIES": "0",
        **extra,
    }


def production_env(**extra: str) -> dict[str, str]:
    """``database_env()`` as production runs (``APP_ENV=production``: DEBUG off, the pools,
    fail-fast settings) over plain HTTP on 127.0.0.1, with the offline model. The secret key is
    the tests' own, so that tokens made in the test process authenticate."""
    from django.conf import settings

    env = {
        **database_env(),
        "APP_ENV": "production",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "FIRST_SUPERUSER": "",
        "FIRST_SUPERUSER_PASSWORD": "",
        "LLM_MODEL_PROVIDER": "offline",
        "LLM_MODEL_NAME": "offline",
        "OFFLINE_MODEL_STREAM_DELAY": "0",
        "LANGFUSE_ENABLED": "false",
        "RATE_LIMIT_PER_MINUTE": "10000",
        "LOGIN_RATE_LIMIT": "10000/m",
        # Background runs in the server's own process: no Celery worker here unless a test
        # starts one (and says so).
        "AGENT_RUNS_BACKEND": "embedded",
        **extra,
    }
    # Production refuses to start without collectstatic's manifest (config.E002).
    env.setdefault("STATIC_ROOT", collected_static_root())
    return env


@functools.cache
def collected_static_root() -> str:
    """A STATIC_ROOT that ``collectstatic`` has filled (once per test process), manifest and all."""
    root = BASE_DIR / "var" / f"test-static-{os.getpid()}"
    env = {
        **os.environ,
        "APP_ENV": "production",  # the manifest storage, as production collects
        "SECRET_KEY": "collectstatic-only-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_ROOT": str(root),
    }
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    subprocess.run(command, cwd=BASE_DIR, env=env, check=True, timeout=300)
    return str(root)


def api_client(base_url: str, user: Any, *, timeout: float = 30.0) -> httpx.Client:
    """An ``httpx.Client`` for a live server, authenticated as ``user`` with an access token."""
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )
