"""The benchmark scenarios of ``docs/benchmarks.md``. Each starts the app in its production
configuration (``bench.app``), drives it with ``bench.load`` and returns its figures as a dict;
``bench/<scenario>.py`` is the command line of each. ``smoke=True`` makes any of them last
seconds (the CI smoke test); the figures are then meaningless, but present.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.app import ROOT, BenchApp, bench_app, machine
from bench.load import run_load, summarise

RESULTS = ROOT / "var" / "bench"


def _db(name: str, smoke: bool) -> str:
    """The scenario's database: the suite's smoke never drops a benchmark's that is running."""
    return f"{name}_smoke" if smoke else name


def _load(app: BenchApp, **kwargs: Any) -> dict[str, Any]:
    app.llm_timings()  # forget the set-up's requests
    samples, resources = asyncio.run(
        run_load(url=app.url, tokens=app.tokens, master_pid=app.master_pid, **kwargs)
    )
    return summarise(
        samples, resources, concurrency=kwargs["concurrency"], llm_timings=app.llm_timings()
    )


def _traced(app: BenchApp, runs: int) -> dict[str, Any]:
    """How many traces reached the receiver: tracing did its work during the load."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        traces = {s.trace_id for s in app.receiver.spans}
        if len(traces) >= runs:
            break
        time.sleep(0.5)
    return {"traces_received": len({s.trace_id for s in app.receiver.spans})}


def save(name: str, label: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{label}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def overhead(
    *, runs: int = 300, warmup: int = 30, tracing: bool = True, smoke: bool = False
) -> dict[str, Any]:
    """LLM latency 0, one client: what the service itself costs per run."""
    runs, warmup = (5, 2) if smoke else (runs, warmup)
    env = {} if tracing else {"LANGFUSE_ENABLED": "false"}
    with bench_app(name=_db("overhead", smoke), users=4, llm_latency=0.0, env_extra=env) as app:
        result = _load(app, concurrency=1, count=runs, warmup=warmup)
        if tracing:
            result.update(_traced(app, runs + warmup))
    return {"scenario": "overhead", "machine": machine(), "tracing": tracing, **result}


def throughput(
    *, users: int = 64, duration: float = 20.0, latency: float = 0.2, smoke: bool = False
) -> dict[str, Any]:
    """64 users, an LLM that takes 200 ms per call, 20 s."""
    duration, warmup = (2.0, 4) if smoke else (duration, users * 2)
    with bench_app(name=_db("throughput", smoke), users=users, llm_latency=latency) as app:
        result = _load(app, concurrency=users, duration=duration, warmup=warmup)
    return {"scenario": "throughput", "machine": machine(), "llm_latency_s": latency, **result}


def sweep(
    *,
    levels: tuple[int, ...] = (1, 4, 16, 64, 128),
    duration: float = 10.0,
    latency: float = 0.2,
    smoke: bool = False,
) -> dict[str, Any]:
    """Latency and throughput against concurrency (the plots of the doc)."""
    levels, duration = ((1, 2), 1.5) if smoke else (levels, duration)
    points = []
    with bench_app(name=_db("sweep", smoke), users=max(levels), llm_latency=latency) as app:
        for level in levels:
            point = _load(app, concurrency=level, duration=duration, warmup=level)
            points.append({**point, "load": machine()["load_average"]})
    return {"scenario": "sweep", "machine": machine(), "llm_latency_s": latency, "points": points}


def streaming(
    *,
    streams: int = 16,
    duration: float = 20.0,
    latency: float = 0.1,
    chunk_delay: float = 0.005,
    smoke: bool = False,
) -> dict[str, Any]:
    """16 concurrent streams: time to the first ``token`` event beyond the LLM's own."""
    duration, warmup = (2.0, 2) if smoke else (duration, streams * 2)
    with bench_app(
        name=_db("streaming", smoke), users=streams, llm_latency=latency, chunk_delay=chunk_delay
    ) as app:
        result = _load(app, concurrency=streams, duration=duration, warmup=warmup, stream=True)
    return {
        "scenario": "streaming",
        "machine": machine(),
        "llm_latency_s": latency,
        "llm_chunk_delay_s": chunk_delay,
        **result,
    }


def memory(
    *, first: int = 1000, total: int = 10000, concurrency: int = 8, smoke: bool = False
) -> dict[str, Any]:
    """Workers' resident memory and threads after ``first`` runs and after ``total``."""
    first, total = (4, 8) if smoke else (first, total)
    checkpoints = []
    with bench_app(name=_db("memory", smoke), users=concurrency, llm_latency=0.0) as app:
        done = 0
        for target in (first, total):
            result = _load(app, concurrency=concurrency, count=target - done, warmup=0)
            done = target
            checkpoints.append(
                {
                    "runs": done,
                    "errors": result["errors"],
                    "workers": {
                        pid: proc
                        for pid, proc in result["processes"].items()
                        if int(pid) != app.master_pid
                    },
                    "server_cpu_ms_per_run": result.get("server_cpu_ms_per_run"),
                }
            )
    a, b = checkpoints
    growth = {
        pid: round(100 * (b["workers"][pid]["rss_mib"] / w["rss_mib"] - 1), 1)
        for pid, w in a["workers"].items()
        if pid in b["workers"]
    }
    threads = {
        pid: (w["threads"], b["workers"][pid]["threads"])
        for pid, w in a["workers"].items()
        if pid in b["workers"]
    }
    return {
        "scenario": "memory",
        "machine": machine(),
        "checkpoints": checkpoints,
        "rss_growth_percent": growth,
        "threads_first_last": threads,
        "errors": a["errors"] + b["errors"],
    }


# -- history at scale -------------------------------------------------------------------------

HEAVY_RUNS = 100_000  # one user with a long history: where a deep cursor page is deep

GENERATE = """
INSERT INTO accounts_user (id, password, is_superuser, email, full_name, is_active, is_staff,
                           date_joined)
SELECT md5('bench-user-' || u)::uuid, '!', false, 'history' || u || '@example.com',
       'History ' || u, true, false, now()
FROM generate_series(0, %(users)s - 1) AS u;

INSERT INTO agents_agentthread (id, owner_id, title, created_at, updated_at)
SELECT md5('bench-thread-' || t)::uuid, md5('bench-user-' || (t %% %(users)s))::uuid,
       'Thread ' || t, now(), now()
FROM generate_series(0, %(threads)s - 1) AS t;

-- Run r belongs to thread r %% threads, whose owner is (r %% threads) %% users; the first
-- HEAVY_RUNS runs all go to user 0's threads (t = 0, users, 2 * users, ...).
INSERT INTO agents_agentrun (id, user_id, thread_id, input, response, plan, status, error,
    latency_ms, trace_id, provider, model, prompt_tokens, completion_tokens, total_tokens,
    reserved_tokens, tool_calls, metadata, background, multitask_strategy, cancel_requested,
    created_at, started_at, finished_at)
SELECT gen_random_uuid(), md5('bench-user-' || (t %% %(users)s))::uuid,
       md5('bench-thread-' || t)::uuid,
       'What users are in the system?', 'There are 3 users.', '1. list_users', 'success', '',
       120, '', 'openai', 'gpt-bench', 200, 30, 230, 0, '[]'::jsonb, '{}'::jsonb,
       false, 'reject', '',
       now() - r * interval '1 second', now() - r * interval '1 second',
       now() - r * interval '1 second'
FROM (
    SELECT r, CASE WHEN r < %(heavy)s THEN (r %% (%(threads)s / %(users)s)) * %(users)s
                   ELSE r %% %(threads)s END AS t
    FROM generate_series(0, %(runs)s - 1) AS r
) AS g;
ANALYZE accounts_user; ANALYZE agents_agentthread; ANALYZE agents_agentrun;
"""


def history_generate(
    database: str, *, users: int, threads: int, runs: int, heavy: int
) -> dict[str, Any]:
    import psycopg

    from bench.app import PG

    started = time.monotonic()
    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                conn.execute(
                    statement,
                    {"users": users, "threads": threads, "runs": runs, "heavy": heavy},
                )
        count = conn.execute("SELECT count(*) FROM agents_agentrun").fetchone()
    return {"runs": count[0] if count else 0, "generate_s": round(time.monotonic() - started, 1)}


def _cursor(position: str) -> str:
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


def history_explain(database: str, user_id: str, position: str) -> dict[str, str]:
    import psycopg

    from bench.app import PG

    # The SQL Django sends for the first page and for a cursor page (``run_list_for_user``, the
    # deferred JSON columns left out), as EXPLAIN ANALYZE sees it.
    base = (
        "SELECT id, user_id, thread_id, input, response, status, error, latency_ms, trace_id, "
        "provider, model, prompt_tokens, completion_tokens, total_tokens, created_at, finished_at "
        "FROM agents_agentrun WHERE user_id = %(user)s {extra} ORDER BY created_at DESC LIMIT 21"
    )
    plans = {}
    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        for name, extra in (("first_page", ""), ("deep_page", "AND created_at < %(pos)s")):
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + base.format(extra=extra),
                {"user": user_id, "pos": position},
            ).fetchall()
            plans[name] = "\n".join(row[0] for row in rows)
    return plans


def history(
    *,
    users: int = 10_000,
    runs: int = 1_000_000,
    requests: int = 400,
    concurrency: int = 1,
    reuse: bool = False,
    smoke: bool = False,
) -> dict[str, Any]:
    """``GET /api/v1/agent/runs``, first page and a deep cursor page, over 1,000,000 runs."""
    if smoke:
        users, runs, requests = 20, 2_000, 10
    threads = users * 10
    heavy = min(HEAVY_RUNS, runs // 10)
    import psycopg

    from bench.app import DB_PREFIX, PG, app_env, database_reset, manage

    database = f"{DB_PREFIX}_history" + ("_smoke" if smoke else "")

    env = app_env(
        database=database,
        llm_url="http://127.0.0.1:9/v1",
        langfuse_url="http://127.0.0.1:9",
        metrics_dir=str(RESULTS / "prom-history"),
    )
    generated: dict[str, Any] = {"reused": True}
    if not reuse:
        database_reset(database)
    manage(env, "migrate", "--noinput", "-v0")  # a reused database gets the new indexes
    if not reuse:
        generated = history_generate(database, users=users, threads=threads, runs=runs, heavy=heavy)
    with bench_app(name=database.removeprefix(f"{DB_PREFIX}_"), users=0, reset=False) as app:
        heavy_id = str(uuid.UUID(hashlib.md5(b"bench-user-0").hexdigest()))
        token = (
            manage(
                app.env,
                "shell",
                "-c",
                "from rest_framework_simplejwt.tokens import AccessToken;"
                "from accounts.models import User;"
                f"print('TOKEN=' + str(AccessToken.for_user(User.objects.get(pk='{heavy_id}'))))",
            )
            .split("TOKEN=")[1]
            .strip()
        )
        with psycopg.connect(f"{PG}/{database}") as conn:
            row = conn.execute(
                "SELECT created_at FROM agents_agentrun WHERE user_id = %s "
                "ORDER BY created_at DESC OFFSET %s LIMIT 1",
                (heavy_id, int(heavy * 0.9)),
            ).fetchone()
            assert row is not None
            own = conn.execute(
                "SELECT count(*) FROM agents_agentrun WHERE user_id = %s", (heavy_id,)
            ).fetchone()
        position = str(row[0])
        app.tokens = [token]
        first = _load(
            app, concurrency=concurrency, count=requests, warmup=20, path="/api/v1/agent/runs"
        )
        deep_path = f"/api/v1/agent/runs?cursor={_cursor(position)}"
        deep = _load(app, concurrency=concurrency, count=requests, warmup=20, path=deep_path)
        plans = history_explain(database, heavy_id, position)
    return {
        "scenario": "history",
        "machine": machine(),
        **generated,
        "user_runs": own[0] if own else None,
        "deep_page_offset": int(heavy * 0.9),
        "first_page": first,
        "deep_page": deep,
        "explain": plans,
    }
