"""A seconds-long smoke of every benchmark scenario (``bench/``): each starts the app as
production runs it (gunicorn, PostgreSQL, Redis, Langfuse to a local receiver), drives it, and
prints figures. Timing is not asserted here (the machine is shared); the figures being there,
and no request failing, are."""

from __future__ import annotations

from typing import Any

import pytest

from bench import scenarios

pytestmark = [pytest.mark.services, pytest.mark.live]


def _spread_present(spread: dict[str, Any]) -> None:
    assert spread["n"] > 0
    assert None not in (spread["p50"], spread["p95"], spread["p99"])


def _load_figures(result: dict[str, Any]) -> None:
    assert result["requests"] > 0
    assert result["errors"] == 0, result["error_examples"]
    assert result["throughput_per_s"] > 0
    _spread_present(result["latency_ms"])
    assert result["server_cpu_ms_per_run"] > 0
    assert result["server_rss_mib"] > 0


def test_overhead_smoke() -> None:
    result = scenarios.overhead(smoke=True)
    _load_figures(result)
    _spread_present(result["server_ms"])
    assert result["traces_received"] >= result["requests"]  # tracing was on, and exported


def test_throughput_smoke() -> None:
    _load_figures(scenarios.throughput(smoke=True))


def test_sweep_smoke() -> None:
    result = scenarios.sweep(smoke=True)
    assert [p["concurrency"] for p in result["points"]] == [1, 2]
    for point in result["points"]:
        _load_figures(point)


def test_streaming_smoke() -> None:
    result = scenarios.streaming(smoke=True)
    _load_figures(result)
    _spread_present(result["first_token_overhead_ms"])


def test_history_smoke() -> None:
    result = scenarios.history(smoke=True)
    assert result["runs"] == 2000
    for page in ("first_page", "deep_page"):
        _load_figures(result[page])
    assert "Index" in result["explain"]["first_page"]
    assert "Index" in result["explain"]["deep_page"]


def test_memory_smoke() -> None:
    result = scenarios.memory(smoke=True)
    assert result["errors"] == 0
    assert [c["runs"] for c in result["checkpoints"]] == [4, 8]
    assert result["rss_growth_percent"]  # both workers measured twice
    assert all(first > 0 and last > 0 for first, last in result["threads_first_last"].values())
