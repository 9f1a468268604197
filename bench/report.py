"""Markdown tables of the saved results (``var/bench/<scenario>-<label>.json``), before against
after, for ``docs/benchmarks.md``.

    .venv/bin/python bench/report.py before after
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "var" / "bench"


def _load(name: str, label: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}-{label}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ms(spread: dict[str, Any] | None, key: str) -> str:
    value = (spread or {}).get(key)
    return "—" if value is None else f"{value:,.1f}"


def _row(title: str, values: list[str]) -> str:
    return f"| {title} | " + " | ".join(values) + " |"


def table(name: str, labels: list[str], rows: list[tuple[str, Any]]) -> str:
    results = [_load(name, label) for label in labels]
    lines = [_row("", labels), _row("---", ["---"] * len(labels))]
    for title, get in rows:
        lines.append(_row(title, ["—" if r is None else str(get(r)) for r in results]))
    return "\n".join(lines)


def load_rows(*, stream: bool = False) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("load average (1/5/15 min) at the end", lambda r: r["machine"]["load_average"]),
        ("runs measured / errors", lambda r: f"{r['requests']} / {r['errors']}"),
        ("throughput, runs/s", lambda r: r["throughput_per_s"]),
        (
            "latency p50 / p95 / p99, ms",
            lambda r: " / ".join(_ms(r["latency_ms"], k) for k in ("p50", "p95", "p99")),
        ),
        (
            "server time (latency minus LLM) p50 / p95, ms",
            lambda r: " / ".join(_ms(r.get("server_ms"), k) for k in ("p50", "p95")),
        ),
        ("**server CPU per run, ms**", lambda r: f"**{r.get('server_cpu_ms_per_run')}**"),
        ("server RSS (master + workers), MiB", lambda r: r.get("server_rss_mib")),
    ]
    if stream:
        rows.insert(
            4,
            (
                "first `token` minus LLM's own time to it, p50 / p95, ms",
                lambda r: " / ".join(
                    _ms(r.get("first_token_overhead_ms"), k) for k in ("p50", "p95")
                ),
            ),
        )
    return rows


def main() -> None:
    labels = sys.argv[1:] or ["before", "after"]
    for name, stream in (("overhead", False), ("throughput", False), ("streaming", True)):
        print(f"### {name}\n\n{table(name, labels, load_rows(stream=stream))}\n")
    print("### sweep\n")
    for label in labels:
        data = _load("sweep", label)
        if not data:
            continue
        print(f"{label}:\n")
        print("| users | runs/s | p50 ms | p99 ms | errors | CPU/run ms | load |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for p in data["points"]:
            print(
                f"| {p['concurrency']} | {p['throughput_per_s']} | {_ms(p['latency_ms'], 'p50')} "
                f"| {_ms(p['latency_ms'], 'p99')} | {p['errors']} "
                f"| {p.get('server_cpu_ms_per_run')} | {p['load']} |"
            )
        print()
    print("### history\n")
    print(
        "| | first page p50 / p95 / p99 ms | deep page p50 / p95 / p99 ms | CPU/request ms | load |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label in labels:
        data = _load("history", label)
        if not data:
            continue
        pages = [data["first_page"], data["deep_page"]]
        cells = [" / ".join(_ms(p["latency_ms"], k) for k in ("p50", "p95", "p99")) for p in pages]
        cpu = " / ".join(str(p.get("server_cpu_ms_per_run")) for p in pages)
        print(f"| {label} | {cells[0]} | {cells[1]} | {cpu} | {data['machine']['load_average']} |")


if __name__ == "__main__":
    main()
