"""Data integrity under a bounded mixed load with injected faults, on a live production-mode
server (gunicorn, two uvicorn workers, PostgreSQL, Prometheus multi-process mode).

Synchronous and streamed runs from several clients at once while the LLM fails (HTTP 500, a
hang past ``LLM_TIMEOUT_SECONDS``) on a fixed share of its requests, and (second variant)
PostgreSQL terminates every connection of the service's database once, mid-load. Afterwards:
the runs stored are exactly the runs the clients were answered about, the tokens stored equal
the tokens the LLM server itself reported, the daily ledger agrees, and so do the Prometheus
counters of ``/metrics``.

``INTEGRITY_LOAD_SECONDS`` (default 20, per variant) bounds the load, for CI time.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, TokenUsage
from testing.faults import terminate_backends
from testing.live import fake_llm_env, run_gunicorn
from testing.llm_server import FakeLLMServer, Reply
from testing.sse import read_events

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]

LOAD_SECONDS = float(os.environ.get("INTEGRITY_LOAD_SECONDS", "20"))
CLIENTS = 6
DOCUMENTED = {HTTPStatus.OK, HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE,
              HTTPStatus.GATEWAY_TIMEOUT}  # fmt: skip


class FaultyLLM(FakeLLMServer):
    """Every 9th request fails with a 500, every 13th hangs past the client's timeout; the
    others answer with token counts that vary, so that sums cannot agree by accident."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.counter += 1
            n = self.counter
        if n % 9 == 0:
            return Reply.error(500, "injected")
        if n % 13 == 0:
            return Reply.hang(4)
        return Reply.text(f"answer {n}", prompt_tokens=10 + n % 7, completion_tokens=3 + n % 5)


@pytest.fixture
def llm() -> Iterator[FaultyLLM]:
    with FaultyLLM() as server:
        yield server


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == HTTPStatus.OK
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    "terminate_db",
    [
        pytest.param(False, id="llm-faults"),
        pytest.param(True, id="llm-and-database-faults"),
    ],
)
def test_runs_tokens_and_metrics_agree_after_a_faulty_mixed_load(
    django_db_setup, llm, tmp_path, terminate_db
):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = fake_llm_env(
        llm.base_url,
        LLM_TIMEOUT_SECONDS="2",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        CACHE_KEY_PREFIX=f"integrity-{uuid.uuid4().hex[:8]}",
        AGENT_RUN_SWEEP_IN_PROCESS="false",
    )
    users = [UserFactory() for _ in range(CLIENTS)]
    answered: list[tuple[int, str | None, str]] = []  # (status, run_id, how)
    lock = threading.Lock()

    with run_gunicorn(env, workers=2) as url:
        stop = time.monotonic() + LOAD_SECONDS

        def client(index: int) -> None:
            headers = {"Authorization": f"Bearer {AccessToken.for_user(users[index])}"}
            n = 0
            while time.monotonic() < stop:
                n += 1
                body = {"message": f"client {index} message {n}"}
                if n % 3 == 0:  # a streamed run: its outcome is its last event
                    with httpx.stream(
                        "POST", f"{url}/api/v1/agent/run/stream", json=body, headers=headers,
                        timeout=60,
                    ) as response:  # fmt: skip
                        events = [e for e in read_events(response) if e.event != "comment"]
                    run_id = events[0].data.get("run_id") if events else None
                    last = events[-1] if events else None
                    status = HTTPStatus.OK if last and last.event == "done" else 0
                    if last and last.event == "error":
                        status = {"llm_unavailable": 502, "llm_timeout": 504}.get(
                            last.data["code"], 503
                        )
                    with lock:
                        answered.append((status, run_id, "stream"))
                else:
                    response = httpx.post(
                        f"{url}/api/v1/agent/run", json=body, headers=headers, timeout=60
                    )
                    run_id = response.json().get("run_id")
                    with lock:
                        answered.append((response.status_code, run_id, "run"))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_SECONDS / 2)
        if terminate_db:
            assert terminate_backends() > 0  # once, mid-load
        for thread in threads:
            thread.join()
        samples = scrape(url)

    assert len(answered) >= CLIENTS * 3
    assert {status for status, _, _ in answered} <= DOCUMENTED, [
        a for a in answered if a[0] not in DOCUMENTED
    ]
    # A request whose connection PostgreSQL killed before its run was recorded answers 503
    # database_unavailable and stores nothing; every other answer names its run.
    refused = [a for a in answered if a[1] is None]
    assert all(a[0] == HTTPStatus.SERVICE_UNAVAILABLE for a in refused), refused
    assert all(a[2].endswith(":database_unavailable") for a in refused), refused
    assert terminate_db or not refused
    answered = [a for a in answered if a[1] is not None]
    # Runs stored == requests answered: each answer names its run, and no run is unanswered.
    run_ids = [run_id for _, run_id, _ in answered]
    stored = AgentRun.objects.filter(user__in=users)
    assert sorted(str(pk) for pk in stored.values_list("id", flat=True)) == sorted(run_ids)
    assert not stored.filter(status="running").exists()
    for status, run_id, _ in answered:
        expected = AgentRun.Status.SUCCESS if status == HTTPStatus.OK else AgentRun.Status.ERROR
        assert stored.get(pk=run_id).status == expected
    assert stored.filter(status="error").exists()  # the faults were hit
    assert stored.filter(status="success").exists()

    # Tokens: the database == the LLM server's own count == the ledger == Prometheus.
    db_tokens = stored.aggregate(total=Sum("total_tokens"))["total"] or 0
    assert db_tokens == llm.usage_reported["total_tokens"]
    assert TokenUsage.objects.filter(user__in=users).aggregate(t=Sum("used"))["t"] == db_tokens
    assert samples[("agent_tokens_total", frozenset())] == db_tokens

    def metric(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert metric("agent_invocations_total") == stored.count()
    assert (
        metric("agent_invocations_by_status_total", status="completed")
        == stored.filter(status="success").count()
    )
    errors = metric("agent_invocations_by_status_total", status="failed") + metric(
        "agent_invocations_by_status_total", status="timeout"
    )
    assert errors == stored.filter(status="error").count()
    assert metric("agent_active_executions") == 0
