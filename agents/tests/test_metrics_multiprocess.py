"""Prometheus multi-process mode: the app under gunicorn with two uvicorn workers, as the Docker
image runs it. Whichever worker answers ``/metrics``, the counts of both add up."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from testing.live import database_env, run_gunicorn, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """``/metrics`` on a new connection (so any worker may answer), parsed."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == HTTPStatus.OK
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def per_worker(directory: Path, name: str) -> dict[int, float]:
    """A counter's value in each worker's own file: who served what."""
    values = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            values[pid] = registry.get_sample_value(name) or 0.0
    return values


def test_counts_of_all_workers_add_up(tmp_path: Path) -> None:
    user = UserFactory()
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"left over from an earlier server")
    env = {
        **database_env(),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "LLM_MODEL_PROVIDER": "offline",
        "LLM_MODEL_NAME": "offline",
        "OFFLINE_MODEL_STREAM_DELAY": "0",
        "METRICS_BEARER_TOKEN": "",
        "METRICS_ALLOWED_NETWORKS": "",
    }

    with run_gunicorn(env, workers=2) as url:
        assert not (multiproc / "counter_1.db").exists(), "gunicorn did not empty the directory"

        def run(i: int) -> None:
            response = httpx.post(
                f"{url}/api/v1/agent/run",
                json={"message": f"Hello, this is run {i}."},
                headers=headers,
                timeout=60,
            )
            assert response.status_code == HTTPStatus.OK, response.text
            assert response.json()["status"] == "success"

        # New connections, several at once, until both workers have served runs.
        sent = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            while sent < 48:
                list(pool.map(run, range(sent, sent + 8)))
                sent += 8
                served = per_worker(multiproc, "agent_invocations_total")
                if len([pid for pid, runs in served.items() if runs > 0]) >= 2:
                    break
        served = per_worker(multiproc, "agent_invocations_total")
        assert len([pid for pid, runs in served.items() if runs > 0]) >= 2, served
        assert sum(served.values()) == sent

        for _ in range(6):  # whichever worker answers
            samples = scrape(url)
            assert value(samples, "agent_invocations_total") == sent
            assert value(samples, "agent_invocations_by_status_total", status="completed") == sent
            assert value(samples, "agent_invocations_by_status_total", status="failed") == 0
            assert value(samples, "agent_execution_duration_seconds_count") == sent
            assert value(samples, "agent_active_executions") == 0
            assert value(samples, "django_http_requests_total_by_method_total", method="POST") == (
                sent
            )
            assert value(samples, "app_info", version="0.1.0", env="test") == 1

        # A worker dies and is replaced: its counts stay, its share of the live gauge goes.
        victim = max(served, key=lambda pid: served[pid])
        assert (multiproc / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGTERM)
        wait_for(lambda: not (multiproc / f"gauge_livesum_{victim}.db").exists(), timeout=20)
        wait_for(lambda: len(per_worker(multiproc, "agent_invocations_total")) >= 3, timeout=20)
        samples = scrape(url)
        assert value(samples, "agent_invocations_total") == sent
        assert value(samples, "agent_active_executions") == 0
