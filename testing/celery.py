"""A real Celery worker (``celery -A config worker``) for tests, on the tests' database and broker.

Usage::

    with run_celery_worker({"AGENT_RUNS_BACKEND": "celery"}, log_path=tmp / "worker.log") as worker:
        ...  # the worker consumes the broker's queue
        assert "agents.tasks.execute_run" in worker.log()

``CeleryWorker`` can also be killed (``kill``: SIGKILL, as an out-of-memory kill or a lost
machine ends it, with no warm shutdown) and started again, on the same log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from testing.live import BASE_DIR, database_env


class CeleryWorker:
    """One ``celery -A config worker`` process: its environment is the test process's, the
    tests' database (``database_env``) and broker, then ``env``. ``pool`` is its pool
    (``CELERY_WORKER_POOL``; None: the settings' default, threads), ``args`` more of its options;
    output goes to ``log_path``, appended at each start."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        log_path: Path,
        pool: str | None = None,
        concurrency: int = 1,
        args: Sequence[str] = (),
    ) -> None:
        self.env = dict(env or {})
        self.log_path = log_path
        self.pool = pool
        self.concurrency = concurrency
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the worker is not started"
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--concurrency", str(self.concurrency), "--loglevel", "INFO",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        return cmd + self.args

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the worker and wait until it consumes ("ready." in its log)."""
        from django.conf import settings

        assert self.proc is None or self.proc.poll() is not None, "the worker is running"
        env = {
            **os.environ,
            **database_env(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "PYTHONUNBUFFERED": "1",
            **self.env,
            # Not --pool: Celery takes "--pool prefork" for its default and uses the setting.
            **({"CELERY_WORKER_POOL": self.pool} if self.pool else {}),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            offset = out.tell()
            # A session of its own: ``kill`` ends the pool's processes with it.
            self.proc = subprocess.Popen(
                self.command(), cwd=BASE_DIR, env=env, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while b"ready." not in self.log_path.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the worker did not start: {self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self, *, timeout: float = 20.0) -> None:
        """SIGTERM (Celery's warm shutdown: the tasks in hand finish), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the worker and its pool's processes: they end at once, whatever they
        were doing."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def run_celery_worker(
    env: dict[str, str] | None = None,
    *,
    log_path: Path,
    pool: str | None = None,
    concurrency: int = 1,
    args: Sequence[str] = (),
    timeout: float = 60.0,
) -> Iterator[CeleryWorker]:
    """A started ``CeleryWorker``, stopped at the end (if it still runs)."""
    worker = CeleryWorker(env, log_path=log_path, pool=pool, concurrency=concurrency, args=args)
    worker.start(timeout=timeout)
    try:
        yield worker
    finally:
        worker.stop()
