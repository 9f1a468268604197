"""Faults on a live production-mode server: gunicorn with two uvicorn workers, PostgreSQL, a
Redis this module owns, a fake OpenAI server that fails on demand, and Langfuse down (tracing on,
pointed at a port where nothing listens).

Every request gets a documented status and JSON body, every run ends with the right outcome and
none stays ``running``, and the server's log has no traceback and no 500."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import selectors
from agents.models import AgentRun
from testing.faults import (
    OwnRedis,
    gunicorn_log,
    kill_workers,
    terminate_backends,
    wait_until_serving,
)
from testing.live import database_env, fake_llm_env, free_port, run_gunicorn, run_server
from testing.llm_server import FakeLLMServer, Reply
from testing.sse import read_events

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
THREADS = "/api/v1/agent/threads"
BUDGET = 400
RESERVE = 40  # a run here: planner + executor, 18 tokens each


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def redis() -> Iterator[OwnRedis]:
    server = OwnRedis().start()
    yield server
    server.stop()


def server_env(llm: FakeLLMServer, redis_url: str, **extra: str) -> dict[str, str]:
    """The module server's environment; ``extra`` adds to it or overrides it."""
    settings = {
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": f"faults-{uuid.uuid4().hex[:8]}",
        "LLM_TIMEOUT_SECONDS": "2",
        "AGENT_RUN_TIMEOUT_SECONDS": "20",
        "AGENT_DAILY_TOKEN_BUDGET": str(BUDGET),
        "AGENT_RUN_TOKEN_RESERVE": str(RESERVE),
        "AGENT_RUN_SWEEP_IN_PROCESS": "true",
        "AGENT_RUN_SWEEP_INTERVAL_SECONDS": "1",
        "AGENT_RUN_STALE_AFTER_SECONDS": "15",
        "HTTP_TOOL_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HTTP_TOOL_TIMEOUT_SECONDS": "30",
        # Langfuse down: tracing on, exporting to a port where nothing listens.
        "TEST_LANGFUSE_ENABLED": "true",
        "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
        "LANGFUSE_SECRET_KEY": "sk-lf-test",
        "LANGFUSE_HOST": f"http://127.0.0.1:{free_port()}",
        "LANGFUSE_TIMEOUT_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    return {**fake_llm_env(llm.base_url, **settings), **extra}


@pytest.fixture(scope="module")
def server(
    django_db_setup: None, llm: FakeLLMServer, redis: OwnRedis, tmp_path_factory: Any
) -> Iterator[str]:
    multiproc = tmp_path_factory.mktemp("prometheus")
    env = server_env(llm, redis.url, PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    with run_gunicorn(env, workers=2, keep_log=True) as url:
        yield url
    if os.environ.get("KEEP_SERVER_LOGS") != "1":
        gunicorn_log(url).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def fresh_llm(llm: FakeLLMServer) -> Iterator[None]:
    llm.reset()
    llm.default_reply = None
    yield
    llm.default_reply = None


@pytest.fixture
def clean_log(server: str) -> Iterator[None]:
    """The test adds no traceback and no 500 to the server's log."""
    log = gunicorn_log(server)
    start = log.stat().st_size
    yield
    time.sleep(0.3)
    with log.open("rb") as handle:
        handle.seek(start)
        added = handle.read().decode(errors="replace")
    assert "Traceback" not in added, added[-4000:]
    assert '"status": 500' not in added, added[-4000:]
    assert "Internal Server Error" not in added, added[-4000:]


def auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


def post(url: str, user: User, path: str = RUN, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers=auth(user), timeout=60)


def assert_nothing_running() -> None:
    running = list(AgentRun.objects.filter(status="running").values_list("id", "error"))
    assert running == []


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


PLAN = Reply.text("1. Do it.")


@pytest.mark.usefixtures("clean_log")
def test_a_cold_workers_first_llm_request_is_bounded_by_llm_timeout(server, llm):
    """The first request of each fresh worker (no LLM client built yet) hangs: 504 after
    LLM_TIMEOUT_SECONDS (2), not whenever the LLM answers."""
    users = [UserFactory(), UserFactory()]
    llm.default_reply = Reply.hang(15)
    with ThreadPoolExecutor(2) as pool:  # two requests, so both workers get one
        started = time.monotonic()
        responses = list(pool.map(lambda u: post(server, u, message="hi"), users))
        elapsed = time.monotonic() - started
    for response in responses:
        assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT, response.text
        assert response.json()["code"] == "llm_timeout"
        run = AgentRun.objects.get(pk=response.json()["run_id"])
        assert run.error.startswith("llm_timeout: ")
        # The LLM timeout, plus building the graph on a cold worker; never the hang's 15 s.
        assert (run.latency_ms or 0) < 8000
    assert elapsed < 10
    assert_nothing_running()


FAULTS = {
    "500": ([Reply.error(500)], HTTPStatus.BAD_GATEWAY, "llm_unavailable"),
    "429": ([Reply.error(429, "slow down")], HTTPStatus.BAD_GATEWAY, "llm_unavailable"),
    "503": ([Reply.error(503, "overloaded")], HTTPStatus.BAD_GATEWAY, "llm_unavailable"),
    "hang": ([Reply.hang(6)], HTTPStatus.GATEWAY_TIMEOUT, "llm_timeout"),
    "hang after the plan": ([PLAN, Reply.hang(6)], HTTPStatus.GATEWAY_TIMEOUT, "llm_timeout"),
    "unknown tool": (
        [PLAN, Reply.tool_calls([("no_such_tool", {})]), Reply.text("There is no such tool.")],
        HTTPStatus.OK,
        "unknown_tool",
    ),
    "invalid tool arguments": (
        [
            PLAN,
            Reply.tool_calls([("lookup_item_by_id", {"item_id": "not a number"})]),
            Reply.text("That id is not valid."),
        ],
        HTTPStatus.OK,
        "invalid_arguments",
    ),
}


@pytest.mark.usefixtures("clean_log")
@pytest.mark.parametrize("path", [RUN, STREAM])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_llm_faults_answer_their_documented_status(server, llm, fault, path):
    replies, status, code = FAULTS[fault]
    user = UserFactory()
    llm.enqueue(*replies)
    response = post(server, user, path, message="hello")

    if path == RUN:
        assert response.status_code == status, response.text
        body = response.json()
    else:  # the stream answers 200; the outcome is its last event
        assert response.status_code == HTTPStatus.OK
        events = [e for e in read_events(response) if e.event != "comment"]
        last = events[-1]
        assert last.event == ("done" if status == HTTPStatus.OK else "error"), events
        body = last.data
    run = AgentRun.objects.get(pk=body["run_id"])
    if status == HTTPStatus.OK:
        assert run.status == AgentRun.Status.SUCCESS
        [call] = run.tool_calls
        assert call["ok"] is False
        assert code in call["output"]
    else:
        assert body["code"] == code
        assert run.status == AgentRun.Status.ERROR
        assert run.error.startswith(f"{code}: ")
    assert_nothing_running()
    # The ledger counts exactly what the runs stored.
    assert selectors.tokens_used_today(user=user) == (run.total_tokens or 0)


@pytest.mark.usefixtures("clean_log")
def test_one_run_at_a_time_per_thread_across_workers(server, llm):
    user = UserFactory()
    first = post(server, user, message="hello")
    assert first.status_code == HTTPStatus.OK
    thread_id = first.json()["thread_id"]
    llm.default_reply = Reply.text("slowly", delay=1.0)

    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda _: post(server, user, message="again", thread_id=thread_id), range(6))
        )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [HTTPStatus.OK] + [HTTPStatus.CONFLICT] * 5, [r.text for r in responses]
    for response in responses:
        if response.status_code == HTTPStatus.CONFLICT:
            assert response.json()["code"] == "thread_busy"
    assert AgentRun.objects.filter(thread_id=thread_id).count() == 2
    assert_nothing_running()


@pytest.mark.usefixtures("clean_log")
def test_deleting_a_thread_while_it_runs(server, llm):
    """The stream ends with an ``error`` event ``thread_deleted``, never ``done``; the
    synchronous call answers 409 ``thread_deleted``; the tokens still count."""
    user = UserFactory()
    llm.enqueue(PLAN, Reply.text("a long answer " * 20, chunk_delay=0.05))
    with httpx.stream(
        "POST", f"{server}{STREAM}", json={"message": "hi"}, headers=auth(user), timeout=30
    ) as response:
        events = []
        for event in read_events(response):
            events.append(event)
            if event.event == "token" and sum(e.event == "token" for e in events) == 1:
                thread_id = next(e.data["thread_id"] for e in events if e.event == "run")
                deleted = httpx.delete(f"{server}{THREADS}/{thread_id}", headers=auth(user))
                assert deleted.status_code == HTTPStatus.NO_CONTENT
    names = [e.event for e in events if e.event != "comment"]
    assert "done" not in names
    assert names[-1] == "error"
    assert events[-1].data["code"] == "thread_deleted"

    thread_id = str(uuid.uuid4())
    llm.enqueue(Reply.text("1. Think slowly.", delay=1.5), Reply.text("never kept"))
    timer = threading.Timer(
        0.7, lambda: httpx.delete(f"{server}{THREADS}/{thread_id}", headers=auth(user))
    )
    timer.start()
    response = post(server, user, message="hi", thread_id=thread_id)
    timer.join()
    assert response.status_code == HTTPStatus.CONFLICT, response.text
    assert response.json()["code"] == "thread_deleted"
    assert not AgentRun.objects.filter(user=user).exists()
    # Both runs' planner and executor calls count, though the runs are gone.
    assert selectors.tokens_used_today(user=user) == 18 * 4
    assert_nothing_running()


@pytest.mark.usefixtures("clean_log")
def test_concurrent_runs_stay_within_the_budget_and_deleting_threads_keeps_it(server, llm):
    """25 runs at once against a budget of 400 tokens (reservations of 40; a run uses 36): the
    day's usage ends at most one run's worth over the limit; deleting every thread changes
    nothing."""
    user = UserFactory()
    llm.default_reply = Reply.text("ok", delay=0.3)
    with ThreadPoolExecutor(25) as pool:
        responses = list(pool.map(lambda _: post(server, user, message="hi"), range(25)))

    ok = [r for r in responses if r.status_code == HTTPStatus.OK]
    refused = [r for r in responses if r.status_code == HTTPStatus.TOO_MANY_REQUESTS]
    assert len(ok) + len(refused) == 25, [r.text for r in responses]
    assert {r.json()["code"] for r in refused} == {"token_budget_exceeded"}
    used = selectors.tokens_used_today(user=user)
    assert used == sum(r.json()["usage"]["total_tokens"] for r in ok)
    assert used <= BUDGET + 36
    assert ok

    me = httpx.get(f"{server}/api/v1/users/me", headers=auth(user)).json()["token_budget"]
    assert me == {"daily_limit": BUDGET, "used_today": used, "remaining": max(BUDGET - used, 0)}
    for response in ok:
        thread_id = response.json()["thread_id"]
        httpx.delete(f"{server}{THREADS}/{thread_id}", headers=auth(user))
    assert not AgentRun.objects.filter(user=user).exists()
    again = httpx.get(f"{server}/api/v1/users/me", headers=auth(user)).json()["token_budget"]
    assert again == me
    assert_nothing_running()


@pytest.mark.usefixtures("clean_log")
def test_database_connections_terminated_under_load(server, llm):
    """Runs in flight when PostgreSQL terminates every connection of the service's database:
    each finish is retried on a fresh connection, every client gets its run's outcome."""
    users = [UserFactory() for _ in range(8)]
    llm.default_reply = Reply.text("ok", delay=0.8)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, server, u, RUN, message="hi") for u in users]
        wait_for(lambda: len(llm.requests) >= 8)  # every run is waiting for its LLM
        terminated = terminate_backends()
        responses = [f.result() for f in futures]
    assert terminated > 0
    outcomes = []
    for response in responses:
        body = response.json()
        run = AgentRun.objects.get(pk=body["run_id"])
        if response.status_code == HTTPStatus.OK:
            assert run.status == AgentRun.Status.SUCCESS, (run.error, body)
        else:  # a query of the run itself hit a terminated connection
            assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.text
            assert body["code"] == "database_unavailable"
            assert run.status == AgentRun.Status.ERROR
        outcomes.append(response.status_code)
    assert outcomes.count(HTTPStatus.OK) >= 4, outcomes
    assert_nothing_running()


IDLE_POOL = 6  # per pool: psycopg_pool's own check, with backoff, cannot walk six within 10 s


def test_database_connections_terminated_while_idle(llm, redis):
    """PostgreSQL terminates the service's idle connections while each of its pools (Django's
    and the checkpointer's) holds six: the next requests answer 200, as fast as before.

    A server of its own, so that the condition is certain: one worker (every request meets the
    dead connections), pools kept at six idle connections, no sweeper to meet them first. A
    checkout that tried dead connections one by one, backing off between each two (0, 1, 2, 4,
    8 s), would give up at the pool's 10 s timeout: a 500."""
    app_name = f"idle-{uuid.uuid4().hex[:8]}"  # the server's connections, in pg_stat_activity
    env = server_env(
        llm,
        redis.url,
        DATABASE_URL=f"{database_env()['DATABASE_URL']}?application_name={app_name}",
        DATABASE_POOL_MIN_SIZE=str(IDLE_POOL),
        AGENT_CHECKPOINT_POOL_MIN_SIZE=str(IDLE_POOL),
        AGENT_RUN_SWEEP_IN_PROCESS="false",
    )
    user = UserFactory()
    with run_gunicorn(env, workers=1, keep_log=True) as url:
        for _ in range(2):  # both pools open, and fill to their minimum
            assert post(url, user, message="warm").status_code == HTTPStatus.OK
        wait_for(lambda: server_connections(app_name) >= 2 * IDLE_POOL)
        assert terminate_backends() >= 2 * IDLE_POOL

        for _ in range(8):
            started = time.monotonic()
            response = post(url, user, message="after")
            elapsed = time.monotonic() - started
            assert response.status_code == HTTPStatus.OK, response.text
            assert elapsed < 3, f"{elapsed:.1f} s"
        assert_nothing_running()
        text = gunicorn_log(url).read_text(errors="replace")
        assert "Traceback" not in text, text[-4000:]
        assert '"status": 500' not in text, text[-4000:]
    if os.environ.get("KEEP_SERVER_LOGS") != "1":
        gunicorn_log(url).unlink(missing_ok=True)


def server_connections(application_name: str) -> int:
    """How many connections a server that connects as ``application_name`` holds."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return int(cursor.fetchone()[0])


class HangingHTTPServer:
    """Accepts connections and never answers: a tool call that never returns."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_a_worker_killed_mid_run_is_swept_as_abandoned(server, llm):
    user = UserFactory()
    hanging = HangingHTTPServer()
    url = f"http://127.0.0.1:{hanging.port}/slow"
    llm.enqueue(PLAN, Reply.tool_calls([("http_get", {"url": url})]))
    run_id = None
    try:
        with httpx.stream(
            "POST", f"{server}{STREAM}", json={"message": "fetch"}, headers=auth(user), timeout=30
        ) as response:
            for event in read_events(response):
                if event.event == "run":
                    run_id = event.data["run_id"]
                if event.event == "tool_call":
                    time.sleep(0.5)  # the tool is waiting on the hanging server
                    killed = kill_workers(server)
                    assert killed
    except httpx.HTTPError:
        pass  # the connection died with its worker
    finally:
        hanging.close()
    assert run_id is not None
    wait_until_serving(server, old=killed)

    run = wait_for(lambda: AgentRun.objects.filter(pk=run_id).exclude(status="running").first(), 60)
    assert run.status == AgentRun.Status.ERROR
    assert run.error.startswith("abandoned: ")
    # A run checkpoints when it ends (durability="exit"): the killed turn left nothing in the
    # thread's memory, so no tool call is left open there.
    detail = httpx.get(f"{server}{THREADS}/{run.thread_id}", headers=auth(user)).json()
    assert detail["messages"] == [], detail["messages"]
    # The thread's next turn works.
    response = post(server, user, message="and now?", thread_id=str(run.thread_id))
    assert response.status_code == HTTPStatus.OK, response.text
    assert_nothing_running()


@pytest.mark.usefixtures("clean_log")
def test_redis_stopped_rate_limits_fail_open(server, llm, redis):
    """RATE_LIMIT_FAIL_OPEN on (the default): with Redis down the runs go through."""
    user = UserFactory()
    redis.stop()
    try:
        started = time.monotonic()
        response = post(server, user, message="hi")
        assert response.status_code == HTTPStatus.OK, response.text
        assert time.monotonic() - started < 15
    finally:
        redis.start()
    assert post(server, user, message="hi").status_code == HTTPStatus.OK
    assert_nothing_running()


def test_redis_down_with_fail_closed_is_503_json(django_db_setup, llm):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = server_env(llm, dead_redis, RATE_LIMIT_FAIL_OPEN="false")
    with run_server(env) as url:
        response = post(url, UserFactory(), message="hi")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "rate_limit_unavailable"
    assert not AgentRun.objects.exists()


def test_garbage_from_the_llm_is_502(server, llm):
    """Last in the module: before the fix it logs the crash's traceback."""
    user = UserFactory()
    llm.enqueue(Reply.garbage())
    response = post(server, user, message="hello")
    assert response.status_code == HTTPStatus.BAD_GATEWAY, response.text
    assert response.json()["code"] == "llm_unavailable"
    assert_nothing_running()
