"""The app in its production configuration, for a benchmark: gunicorn with uvicorn workers
(``docker/gunicorn.conf.py``), PostgreSQL for data and checkpoints, Redis for the cache and the
rate limits, Langfuse tracing to a local receiver, Prometheus in multi-process mode, and the
benchmarks' LLM server (``bench/llm_server.py``) as the OpenAI-compatible provider.

``bench_app(name=...)`` creates the database ``agents_bench_<name>`` afresh (``BENCH_DB_PREFIX``
changes the prefix), migrates it, creates the users and their access tokens, starts everything
and yields a :class:`BenchApp`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testing.langfuse_receiver import LangfuseReceiver  # noqa: E402
from testing.live import collected_static_root, free_port  # noqa: E402

PG = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "agents_bench")

CREATE_USERS = """
import json, os
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
n = int(os.environ["BENCH_USERS"])
users = User.objects.bulk_create(
    [User(email=f"bench{i}@example.com", full_name=f"Bench {i}", password="!") for i in range(n)]
)
print("TOKENS=" + json.dumps([str(AccessToken.for_user(u)) for u in users]))
"""


@dataclass
class BenchApp:
    url: str
    master_pid: int
    tokens: list[str]
    llm_url: str
    receiver: LangfuseReceiver
    env: dict[str, str]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def llm_timings(self) -> list[dict[str, Any]]:
        """What the LLM server spent per request since the last call (and forget it)."""
        return list(httpx.get(f"{self.llm_url}/bench/timings", timeout=30).json())

    def worker_pids(self) -> list[int]:
        from bench.procstat import children

        return children(self.master_pid)


def app_env(*, database: str, llm_url: str, langfuse_url: str, metrics_dir: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SECRET_KEY": "bench-secret-key-not-for-real-use-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # TLS ends at the proxy in front of gunicorn
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": REDIS,
        "CACHE_KEY_PREFIX": f"bench-{database}",
        "LLM_MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench-key",
        "LLM_MODEL_NAME": "gpt-bench",
        "LLM_MAX_RETRIES": "0",
        "LANGFUSE_ENABLED": "true",
        "LANGFUSE_PUBLIC_KEY": "pk-lf-bench",
        "LANGFUSE_SECRET_KEY": "sk-lf-bench",
        "LANGFUSE_HOST": langfuse_url,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        # Production refuses to start without collectstatic's manifest.
        "STATIC_ROOT": collected_static_root(),
        # Counted as in production, but high enough never to refuse the load generator.
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "AGENT_DAILY_TOKEN_BUDGET": "1000000000",
        "PYTHONUNBUFFERED": "1",
    }


def database_reset(database: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
    return result.stdout


def users_create(env: dict[str, str], count: int) -> list[str]:
    out = manage({**env, "BENCH_USERS": str(count)}, "shell", "-c", CREATE_USERS)
    line = next(line for line in out.splitlines() if line.startswith("TOKENS="))
    return list(json.loads(line.removeprefix("TOKENS=")))


@contextmanager
def llm_server_process(*, latency: float, chunk_delay: float, answer_words: int) -> Iterator[str]:
    cmd = [
        sys.executable, str(ROOT / "bench" / "llm_server.py"), "--latency", str(latency),
        "--chunk-delay", str(chunk_delay), "--answer-words", str(answer_words),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield str(json.loads(proc.stdout.readline())["base_url"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int, log_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "config.asgi:application",
        "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}", "--config", str(ROOT / "docker" / "gunicorn.conf.py"),
        "--graceful-timeout", "5", "--backlog", "2048",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def bench_app(
    *,
    name: str,
    users: int = 64,
    workers: int = 2,
    llm_latency: float = 0.0,
    chunk_delay: float = 0.0,
    answer_words: int = 40,
    env_extra: dict[str, str] | None = None,
    reset: bool = True,
) -> Iterator[BenchApp]:
    database = f"{DB_PREFIX}_{name}"
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    with (
        LangfuseReceiver() as receiver,
        llm_server_process(
            latency=llm_latency, chunk_delay=chunk_delay, answer_words=answer_words
        ) as llm_url,
    ):
        env = app_env(
            database=database,
            llm_url=llm_url,
            langfuse_url=receiver.base_url,
            metrics_dir=str(tmp / "prometheus"),
        )
        env.update(env_extra or {})
        tokens: list[str] = []
        if reset:
            database_reset(database)
            manage(env, "migrate", "--noinput", "-v0")
        if users:
            tokens = users_create(env, users)
        log_path = tmp / "gunicorn.log"
        with gunicorn(env, workers=workers, log_path=log_path) as (url, pid):
            yield BenchApp(
                url=url,
                master_pid=pid,
                tokens=tokens,
                llm_url=llm_url,
                receiver=receiver,
                env=env,
                log_path=log_path,
            )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": load_average(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
