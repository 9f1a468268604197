"""Benchmark: what the service adds around the model, measured end to end over HTTP.

Runs the app under uvicorn with the offline model (so the LLM costs ~nothing and what is left
is our overhead: auth, run record, graph, checkpointer, tools, JSON), then measures:

- sequential ``POST /api/v1/agent/run`` latency (p50/p95/max) for a tool-calling message;
- the same under concurrency;
- time to the first SSE event and to ``done`` on ``/api/v1/agent/run/stream``;
- the server's resident memory after the load.

Usage: ``.venv/bin/python bench/run_latency.py [--database-url URL] [--runs N] [--concurrency C]``
(default: a throw-away SQLite database). Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.live import run_server  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} n={len(values):<4} p50={percentile(values, 50):7.1f} ms  "
        f"p95={percentile(values, 95):7.1f} ms  max={max(values):7.1f} ms  "
        f"mean={statistics.mean(values):7.1f} ms"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agents-bench-"))
    env = {
        "APP_ENV": "local",
        "DEBUG": "false",
        "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'db.sqlite3'}",
        "AGENT_CHECKPOINT_SQLITE_PATH": str(tmp / "checkpoints.sqlite3"),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", ""),
        "LLM_MODEL_PROVIDER": "offline",
        "OFFLINE_MODEL_STREAM_DELAY": "0",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    with run_server(env) as url:
        client = httpx.Client(base_url=url, timeout=60)
        token = client.post(
            "/api/v1/login/access-token",
            data={"username": "admin@example.com", "password": "changethis"},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        message = {"message": "What users are in the system?"}

        def one_run(_: int = 0) -> float:
            started = time.perf_counter()
            response = client.post("/api/v1/agent/run", json=message, headers=headers)
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        for _ in range(10):  # warm up: imports, first connections, caches
            one_run()
        sequential = [one_run() for _ in range(args.runs)]
        with ThreadPoolExecutor(args.concurrency) as pool:
            started = time.perf_counter()
            concurrent = list(pool.map(one_run, range(args.runs)))
            wall = time.perf_counter() - started

        first_event, done = [], []
        for _ in range(min(args.runs, 50)):
            started = time.perf_counter()
            with client.stream(
                "POST", "/api/v1/agent/run/stream", json=message, headers=headers
            ) as response:
                seen_first = False
                for line in response.iter_lines():
                    if line.startswith("event:") and not seen_first:
                        first_event.append((time.perf_counter() - started) * 1000)
                        seen_first = True
                    if line == "event: done":
                        done.append((time.perf_counter() - started) * 1000)
        server_pid = int(
            subprocess.run(  # noqa: S603
                ["pgrep", "-f", f"uvicorn.*port {url.rsplit(':', 1)[1]}"],  # noqa: S607
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()[0]
        )
        print(f"database: {env['DATABASE_URL'].split('://')[0]}, runs: {args.runs}")
        print(summary("run, sequential", sequential))
        print(summary(f"run, {args.concurrency} concurrent clients", concurrent))
        print(f"{'throughput, concurrent':<34} {args.runs / wall:.1f} runs/s")
        print(summary("stream, first event", first_event))
        print(summary("stream, done", done))
        print(f"{'server RSS after load':<34} {rss_mb(server_pid):.0f} MiB")


if __name__ == "__main__":
    main()
