"""Where a run's CPU goes: the overhead scenario's load (LLM latency 0) while py-spy samples
every gunicorn process. Writes a flame graph (SVG) and the collapsed stacks, and prints the
functions with the largest inclusive share of the samples.

    .venv/bin/python bench/profile.py --runs 300 --svg docs/benchmarks/flame-after.svg
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.app import ROOT, bench_app
from bench.load import run_load, summarise

PY_SPY = Path(sys.executable).parent / "py-spy"


def top(collapsed: Path, limit: int = 45) -> list[tuple[float, str]]:
    """Inclusive share of samples per function (``name (file)``), largest first."""
    totals: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = {f.split(":")[0] for f in stack.split(";")}
        for frame in frames:
            totals[frame] += n
    return [(100 * n / samples, f) for f, n in totals.most_common(limit)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--svg", default=str(ROOT / "var" / "bench" / "flame.svg"))
    args = parser.parse_args()
    raw = ROOT / "var" / "bench" / "flame.collapsed"
    raw.parent.mkdir(parents=True, exist_ok=True)
    with bench_app(name="profile", users=4, llm_latency=0.0) as app:
        asyncio.run(run_load(url=app.url, tokens=app.tokens, concurrency=2, count=40))  # warm
        command = [str(PY_SPY), "record", "--pid", str(app.master_pid), "--subprocesses"]
        command += ["--rate", "200", "--nonblocking", "--gil"]  # on-CPU Python only
        spies = [
            subprocess.Popen(
                [*command, "--format", fmt, "--output", out],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, out in (("flamegraph", args.svg), ("raw", str(raw)))
        ]
        time.sleep(1.0)
        samples, resources = asyncio.run(
            run_load(
                url=app.url,
                tokens=app.tokens,
                concurrency=args.concurrency,
                count=args.runs,
                master_pid=app.master_pid,
            )
        )
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes its output and stops
        for spy in spies:
            spy.wait(timeout=60)
    summary = summarise(samples, resources, concurrency=args.concurrency)
    print(f"cpu/run {summary.get('server_cpu_ms_per_run')} ms, errors {summary['errors']}")
    for share, frame in top(raw):
        print(f"{share:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
