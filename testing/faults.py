"""Faults for the live-server tests: a Redis the test owns (stopped and started at will), the
test database's PostgreSQL connections terminated, a server's workers killed, a client's
connections dropped (a TCP proxy in front of a server)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

from testing.live import BASE_DIR, free_port


class OwnRedis:
    """``redis-server`` on a free port, without persistence, for one test module."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            out = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if out.stdout.strip() == "PONG":
                return self
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def terminate_backends() -> int:
    """``pg_terminate_backend`` on every other connection to the tests' own database (the one
    the servers under test use): how many it terminated."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = int(cursor.fetchone()[0])
    # This process's own pooled connections were among them: drop them, not the test.
    pool = getattr(connection, "pool", None)
    if pool is not None:
        pool.check()
    from agents.checkpointer import close_checkpointer

    close_checkpointer()
    return terminated


def _pids_serving(port: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of the processes whose command line binds ``127.0.0.1:port``."""
    found = []
    needle = f"127.0.0.1:{port}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in cmdline:
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            found.append((int(entry.name), ppid))
    return found


def gunicorn_workers(base_url: str) -> list[int]:
    """The worker pids of the gunicorn that ``testing.live.run_gunicorn`` started at
    ``base_url`` (the processes whose parent is that gunicorn's master)."""
    port = int(base_url.rsplit(":", 1)[1])
    procs = _pids_serving(port)
    pids = {pid for pid, _ in procs}
    return [pid for pid, ppid in procs if ppid in pids]


def kill_workers(base_url: str) -> list[int]:
    """``kill -9`` the server's workers (its master starts new ones); their pids."""
    killed = gunicorn_workers(base_url)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return killed


def wait_until_serving(base_url: str, *, old: list[int], timeout: float = 30.0) -> None:
    """Until new workers (none of ``old``) answer ``/healthz``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = gunicorn_workers(base_url)
        if workers and not set(workers) & set(old):
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    raise AssertionError("the server's workers did not come back")


def gunicorn_log(base_url: str) -> Path:
    """Where ``run_gunicorn(..., keep_log=True)`` writes the server's output."""
    return BASE_DIR / "var" / f"live-gunicorn-{base_url.rsplit(':', 1)[1]}.log"


class DroppingProxy:
    """A TCP proxy on a free port in front of ``target`` (``http://127.0.0.1:PORT``): clients
    talk to the server through it until ``drop()`` closes every connection open at that moment,
    mid-response, as a lost network would. New connections go through again."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(source, sink), name="proxy-pipe", daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop(self) -> int:
        """Close every open connection (both ends); how many client connections that was."""
        with self._lock:
            sockets = list(self._open)
        self._close(*sockets)
        self.dropped += len(sockets) // 2
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.drop()

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
