"""Load generator: ``concurrency`` virtual users, each sending its next run as soon as the last
one answered, for ``duration`` seconds or ``count`` runs, after ``warmup`` runs that are not
counted. Summarised as JSON: latency p50/p95/p99, throughput, errors, and, given the server's
master pid, the server's CPU per run and its memory and threads (``bench.procstat``).

Every message carries a ``[bench:<tag>]`` marker, so that the LLM's own time per run (what the
bench LLM server reports for that tag) can be taken out: ``server_ms`` is the latency minus the
LLM's time, and for streams ``first_token_overhead_ms`` is the time to the first ``token`` event
minus the LLM's own time before its first answer token.

    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --token JWT --concurrency 16 \\
        --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import procstat  # noqa: E402

MESSAGE = "What users are in the system?"


@dataclass
class Sample:
    tag: str
    started: float  # time.monotonic()
    ended: float
    status: int
    first_token: float | None = None
    error: str = ""
    thread_id: str = ""

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": round(max(values), 2) if values else None,
    }


async def _one(
    client: httpx.AsyncClient,
    token: str,
    *,
    stream: bool,
    path: str | None,
    body: dict[str, Any] | None,
) -> Sample:
    tag = uuid.uuid4().hex[:12]
    headers = {"Authorization": f"Bearer {token}"}
    payload = body or {"message": f"{MESSAGE} [bench:{tag}]"}
    started = time.monotonic()
    try:
        if path is not None:  # a read (history): GET path
            response = await client.get(path, headers=headers)
            return Sample(tag, started, time.monotonic(), response.status_code)
        if not stream:
            response = await client.post("/api/v1/agent/run", json=payload, headers=headers)
            ok = response.status_code == 200 and response.json().get("status") == "success"
            return Sample(
                tag,
                started,
                time.monotonic(),
                response.status_code,
                error="" if ok else response.text[:300],
            )
        first: float | None = None
        event = ""
        error = "no done event"
        async with client.stream(
            "POST", "/api/v1/agent/run/stream", json=payload, headers=headers
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "token" and first is None:
                        first = time.monotonic()
                elif line.startswith("data: ") and event in ("done", "error"):
                    error = "" if event == "done" else line[6:300]
        return Sample(tag, started, time.monotonic(), response.status_code, first, error)
    except httpx.HTTPError as exc:
        return Sample(tag, started, time.monotonic(), 0, error=f"{type(exc).__name__}: {exc}")


async def run_load(
    *,
    url: str,
    tokens: list[str],
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    warmup: int = 0,
    stream: bool = False,
    path: str | None = None,
    paths: list[str] | None = None,
    master_pid: int | None = None,
    timeout: float = 120.0,
) -> tuple[list[Sample], dict[str, Any]]:
    """Run the load; the samples and the server's resource use over the measured part."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        kwargs = {"stream": stream, "body": None}

        def target(i: int) -> str | None:
            return paths[i % len(paths)] if paths else path

        # Warm-up, at the same concurrency (imports, pools, caches, first connections).
        if warmup:
            sem = asyncio.Semaphore(concurrency)

            async def warm(i: int) -> None:
                async with sem:
                    await _one(client, tokens[i % len(tokens)], path=target(i), **kwargs)  # type: ignore[arg-type]

            await asyncio.gather(*(warm(i) for i in range(warmup)))

        before = procstat.sample_tree(master_pid) if master_pid else {}
        samples: list[Sample] = []
        started = time.monotonic()
        sent = 0

        async def user(u: int) -> None:
            nonlocal sent
            token = tokens[u % len(tokens)]
            while True:
                if duration is not None and time.monotonic() - started >= duration:
                    return
                if count is not None:
                    if sent >= count:
                        return
                    sent += 1
                samples.append(await _one(client, token, path=target(len(samples)), **kwargs))  # type: ignore[arg-type]

        await asyncio.gather(*(user(u) for u in range(concurrency)))
        wall = time.monotonic() - started
        after = procstat.sample_tree(master_pid) if master_pid else {}
    resources: dict[str, Any] = {"wall_s": round(wall, 3)}
    if master_pid:
        cpu = procstat.cpu_between(before, after)
        resources.update(
            server_cpu_s=round(cpu, 3),
            processes={
                str(pid): {"rss_mib": round(s.rss_mib, 1), "threads": s.threads}
                for pid, s in after.items()
            },
            server_rss_mib=round(sum(s.rss_mib for s in after.values()), 1),
        )
    return samples, resources


def llm_time_by_tag(timings: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per tag: (the LLM's whole time, its time before the first token of its last reply)."""
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in timings:
        calls[row["tag"]].append(row)
    out = {}
    for tag, rows in calls.items():
        rows.sort(key=lambda r: r["arrived"])
        whole = sum(r["finished"] - r["arrived"] for r in rows)
        before_last = sum(r["finished"] - r["arrived"] for r in rows[:-1])
        out[tag] = (whole, before_last + rows[-1]["first_token"] - rows[-1]["arrived"])
    return out


def summarise(
    samples: list[Sample],
    resources: dict[str, Any],
    *,
    concurrency: int,
    llm_timings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    ok = [s for s in samples if not s.error and 200 <= s.status < 300]
    errors = [s for s in samples if s not in ok]
    wall = resources.get("wall_s") or 1.0
    summary: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(samples),
        "errors": len(errors),
        "error_examples": sorted({f"{s.status} {s.error[:160]}" for s in errors})[:3],
        "throughput_per_s": round(len(ok) / wall, 2),
        "latency_ms": spread([s.latency_ms for s in ok]),
        **resources,
    }
    if "server_cpu_s" in resources and samples:
        summary["server_cpu_ms_per_run"] = round(resources["server_cpu_s"] * 1000 / len(samples), 2)
    if llm_timings is not None:
        by_tag = llm_time_by_tag(llm_timings)
        server = [s.latency_ms - by_tag[s.tag][0] * 1000 for s in ok if s.tag in by_tag]
        summary["llm_ms_per_run"] = spread([by_tag[s.tag][0] * 1000 for s in ok if s.tag in by_tag])
        summary["server_ms"] = spread(server)
        firsts = [
            (s.first_token - s.started - by_tag[s.tag][1]) * 1000
            for s in ok
            if s.first_token is not None and s.tag in by_tag
        ]
        if firsts:
            summary["first_token_ms"] = spread(
                [(s.first_token - s.started) * 1000 for s in ok if s.first_token is not None]
            )
            summary["first_token_overhead_ms"] = spread(firsts)
    return summary


def samples_json(samples: list[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description="Load generator for POST /api/v1/agent/run.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", action="append", required=True, help="JWT; repeat for more")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--count", type=int)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--path", help="GET this path instead of starting runs")
    parser.add_argument("--master-pid", type=int, help="the server's master pid, for CPU/RSS")
    parser.add_argument("--llm-url", help="the bench LLM server, to take its time out")
    args = parser.parse_args()
    if args.duration is None and args.count is None:
        args.count = 100
    samples, resources = asyncio.run(
        run_load(
            url=args.url,
            tokens=args.token,
            concurrency=args.concurrency,
            duration=args.duration,
            count=args.count,
            warmup=args.warmup,
            stream=args.stream,
            path=args.path,
            master_pid=args.master_pid,
        )
    )
    timings = None
    if args.llm_url:
        timings = httpx.get(f"{args.llm_url}/bench/timings", timeout=30).json()
    summary = summarise(samples, resources, concurrency=args.concurrency, llm_timings=timings)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
