"""Plots of the concurrency sweep (``bench/sweep.py``): latency and throughput against
concurrency, before and after, as PNG under ``docs/benchmarks/``.

    .venv/bin/python bench/plot.py var/bench/sweep-before.json var/bench/sweep-after.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks"


def main() -> None:
    series = []
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        label = Path(path).stem.removeprefix("sweep-")
        loads = [float(p["load"].split()[0]) for p in data["points"]]
        label = f"{label} (load average {min(loads):.0f}-{max(loads):.0f})"
        series.append((label, data["points"]))
    OUT.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in series:
        levels = [p["concurrency"] for p in points]
        for key, style in (("p50", "-o"), ("p99", "--^")):
            ax.plot(levels, [p["latency_ms"][key] for p in points], style, label=f"{label} {key}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([1, 4, 16, 64, 128], ["1", "4", "16", "64", "128"])
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("POST /agent/run latency (ms)")
    ax.set_title("Latency vs concurrency (LLM 200 ms a call, 3 calls a run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "latency-vs-concurrency.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in series:
        levels = [p["concurrency"] for p in points]
        ax.plot(levels, [p["throughput_per_s"] for p in points], "-o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 4, 16, 64, 128], ["1", "4", "16", "64", "128"])
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("successful runs / s")
    ax.set_title("Throughput vs concurrency (LLM 200 ms a call, 3 calls a run)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "throughput-vs-concurrency.png", dpi=110)
    print(f"wrote {OUT}/latency-vs-concurrency.png and throughput-vs-concurrency.png")


if __name__ == "__main__":
    main()
