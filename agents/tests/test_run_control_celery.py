"""Run control with production's parts: background runs execute on a real Celery worker
(``celery -A config worker`` with the settings' threads pool, ``AGENT_RUNS_BACKEND=celery``)
on Redis, the web side is gunicorn with two uvicorn workers, the event log is a Redis stream
per run, and the model is the fake OpenAI server. What a client sees: a background run's way to
its result, joining its stream on any web process while the worker executes it, a cancel on the
web side that stops the run on the worker (and only that run of the several it executes), the
multitask strategies with the worker executing, a broker that cannot be reached, and a worker
killed mid-run (the run stays ``running`` until the sweeper ends it as abandoned and hands the
thread to the run queued behind it).

The in-process counterpart (the web process executes the runs) is ``test_run_control.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from agents.tests.test_run_control import (
    RUN,
    RUNS,
    SLOW_WORDS,
    THREADS,
    assert_one_at_a_time,
    run_status,
    slow_answer,
)
from agents.tests.test_runner import assert_every_tool_call_answered
from testing.celery import CeleryWorker
from testing.live import (
    BASE_DIR,
    api_client,
    fake_llm_env,
    free_port,
    run_gunicorn,
    run_server,
    server_log_path,
    wait_for,
)
from testing.llm_server import FakeLLMServer, Reply
from testing.sse import Event, read_events

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]

# What the worker runs at once: more than one, so that a thread's runs executing one at a time
# is the queue's doing, not the pool's.
CONCURRENCY = 4


# -- the processes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def slow_site() -> Iterator[str]:
    """An HTTP server that answers after a second: a tool call that takes its time."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.0)
            body = b'{"slow": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def env(django_db_setup: None, llm: FakeLLMServer) -> Iterator[dict[str, str]]:
    """What the web processes and the worker share: the database, Redis as the broker and the
    event log, a queue of this module's own, the fake model, fast cancels."""
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs Redis (REDIS_URL) as the broker")
    queue = f"test-run-control-{uuid.uuid4().hex[:8]}"
    yield fake_llm_env(
        llm.base_url,
        LLM_TIMEOUT_SECONDS="20",
        AGENT_RUNS_BACKEND="celery",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        AGENT_RUN_CANCEL_POLL_SECONDS="0.1",
        AGENT_STREAM_HEARTBEAT_SECONDS="0.5",
        AGENT_RUN_SWEEP_IN_PROCESS="false",  # this module sweeps when it means to
        HTTP_TOOL_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)


@pytest.fixture(scope="module")
def worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """The Celery worker, as production runs it: the settings' pool (threads)."""
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    worker = CeleryWorker(env, log_path=log_path, concurrency=CONCURRENCY)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def server_url(env: dict[str, str], worker: CeleryWorker) -> Iterator[str]:
    with run_gunicorn(env, workers=2) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_llm(llm: FakeLLMServer) -> Iterator[None]:
    llm.reset()
    llm.responder = None
    llm.default_reply = None
    yield
    llm.responder = None
    llm.default_reply = None


@pytest.fixture(autouse=True)
def worker_alive(worker: CeleryWorker) -> None:
    """Each test finds the worker running (a test that kills it starts it again)."""
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


@pytest.fixture
def user() -> Any:
    return UserFactory()


@pytest.fixture
def api(server_url: str, user: Any) -> Iterator[httpx.Client]:
    with api_client(server_url, user) as client:
        yield client


def join(
    server_url: str,
    user: Any,
    run_id: str,
    *,
    last_event_id: str | None = None,
    into: list[Event] | None = None,
) -> list[Event]:
    """The run's stream, joined on a new connection (whichever web process accepts it); its
    events are also appended to ``into`` as they arrive."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events = into if into is not None else []
    with (
        api_client(server_url, user) as client,
        client.stream("GET", f"{RUNS}/{run_id}/stream", headers=headers) as response,
    ):
        assert response.status_code == HTTPStatus.OK
        for event in read_events(response):
            if event.event != "comment":
                events.append(event)
    return events


class Follower:
    """A client that joined a run's stream, on a thread: ``events`` so far, ``result()`` all
    of them once the stream ended."""

    def __init__(self, server_url: str, user: Any, run_id: str) -> None:
        self.events: list[Event] = []
        self._thread = threading.Thread(
            target=join, args=(server_url, user, run_id), kwargs={"into": self.events}
        )
        self._thread.start()

    def result(self) -> list[Event]:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the joined stream did not end"
        return self.events


def by_prompt(answers: Callable[[str], Reply]) -> Callable[[dict[str, Any]], Reply]:
    """A responder for runs that execute at once: the planner gets a plan; the executor's
    answer depends on the run's message (the last user message)."""

    def respond(body: dict[str, Any]) -> Reply:
        if "tools" not in body:  # the planner is not given the tools
            return Reply.text("1. Answer.")
        users = [m for m in body["messages"] if m.get("role") == "user"]
        return answers(str(users[-1]["content"]) if users else "")

    return respond


def worker_records(worker: CeleryWorker, **match: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines whose fields have the values of ``match``."""
    records = []
    for line in worker.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if all(record.get(key) == value for key, value in match.items()):
                records.append(record)
    return records


def user_turns(request: dict[str, Any]) -> list[str]:
    return [m.get("content") for m in request["messages"] if m.get("role") == "user"]


def busy_thread(api: httpx.Client, llm: FakeLLMServer, *, chunk_delay: float = 0.15) -> dict:
    """A background run that the worker is executing: its answer is streaming."""
    slow_answer(llm, chunk_delay=chunk_delay)
    first = api.post(RUNS, json={"message": "first turn"}).json()
    wait_for(lambda: len(llm.requests) == 2 and llm.in_flight == 1, timeout=15)
    assert run_status(first["run_id"]) == "running"
    return first


# -- background runs -------------------------------------------------------------------------


def test_a_background_run_executes_on_the_worker_and_wait_answers_its_body(api, llm, worker):
    slow_answer(llm, chunk_delay=0.02)
    started = api.post(RUNS, json={"message": "Tell me something."})
    assert started.status_code == HTTPStatus.ACCEPTED, started.text
    body = started.json()
    assert body["status"] == "pending"

    waited = api.get(f"{RUNS}/{body['run_id']}/wait", params={"timeout": 30})
    assert waited.status_code == HTTPStatus.OK, (waited.text, worker.log()[-3000:])
    result = waited.json()
    assert result["status"] == "success"
    assert result["response"] == SLOW_WORDS
    assert result["run_id"] == body["run_id"]
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.background
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.created_at <= run.started_at <= run.finished_at
    # The worker executed it, on a thread of its pool: its task, and the run's log line (in the
    # app's JSON, with the run's ids).
    assert f"concurrency: {CONCURRENCY} (thread)" in worker.log()
    records = wait_for(
        lambda: worker_records(worker, event="agent_run", run_id=body["run_id"]), timeout=10
    )
    assert [r["status"] for r in records] == ["success"]
    assert records[0]["thread_id"] == body["thread_id"]

    def tasks_done() -> list[str]:  # logged once the task returned, after the run's end
        done = [r["data"] for r in worker_records(worker, logger="celery.app.trace")]
        return [t["name"] for t in done if t["args"] == repr((body["run_id"],))]

    assert wait_for(tasks_done, timeout=10) == ["agents.tasks.execute_run"]


# -- joining a stream ------------------------------------------------------------------------


def test_joins_from_the_start_and_from_a_last_event_id_lose_and_repeat_nothing(
    server_url, api, user, llm
):
    slow_answer(llm, chunk_delay=0.1)
    run_id = api.post(RUNS, json={"message": "stream me"}).json()["run_id"]

    first: list[Event] = []
    with (
        api_client(server_url, user) as client,
        client.stream("GET", f"{RUNS}/{run_id}/stream") as response,
    ):
        for event in read_events(response):
            if event.event == "comment":
                continue
            first.append(event)
            if sum(e.event == "token" for e in first) == 5:
                break  # the client goes away mid-answer
    assert run_status(run_id) == "running"  # leaving does not stop it

    rest = join(server_url, user, run_id, last_event_id=first[-1].id)
    everything = join(server_url, user, run_id)
    ids = [int(e.id or 0) for e in everything]
    assert ids == list(range(1, len(everything) + 1))
    assert [(e.id, e.event, e.data) for e in first + rest] == [
        (e.id, e.event, e.data) for e in everything
    ]
    assert everything[0].event == "run"
    assert everything[-1].event == "done"
    assert "".join(e.data["text"] for e in everything if e.event == "token").split() == (
        SLOW_WORDS.split()
    )


# -- cancel --------------------------------------------------------------------------------


def test_a_cancel_on_the_web_stops_the_run_on_the_worker(server_url, api, user, llm):
    slow_answer(llm, chunk_delay=0.2)
    run_id = api.post(RUNS, json={"message": "long one"}).json()["run_id"]
    joined = Follower(server_url, user, run_id)
    wait_for(lambda: sum(e.event == "token" for e in joined.events) >= 2, timeout=15)

    asked = time.monotonic()
    cancelled = api.post(f"{RUNS}/{run_id}/cancel")
    assert cancelled.status_code == HTTPStatus.ACCEPTED, cancelled.text
    assert cancelled.json()["cancel_requested"] == "cancel"
    wait_for(lambda: run_status(run_id) == "error", timeout=5, interval=0.02)
    assert time.monotonic() - asked < 2.0

    result = api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 10})
    assert result.status_code == HTTPStatus.CONFLICT
    assert result.json()["code"] == "cancelled"
    events = joined.result()
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "cancelled"
    assert len([e for e in events if e.event == "token"]) < len(SLOW_WORDS.split())
    assert AgentRun.objects.get(pk=run_id).error.startswith("cancelled:")
    # The answer's request was closed: the model stops generating (and billing).
    wait_for(lambda: llm.cancelled_count == 1, timeout=5)


def test_a_run_cancelled_during_its_tool_calls_leaves_them_answered(
    server_url, api, user, llm, slow_site
):
    llm.enqueue(
        Reply.text("1. Fetch. 2. Look up."),
        Reply.tool_calls(
            [
                ("http_get", {"url": f"{slow_site}/slow"}),
                ("lookup_user_by_email", {"email": user.email}),
            ]
        ),
    )
    started = api.post(RUNS, json={"message": "fetch and look up"}).json()
    joined = Follower(server_url, user, started["run_id"])
    wait_for(lambda: any(e.event == "tool_call" for e in joined.events), timeout=15)
    assert api.post(f"{RUNS}/{started['run_id']}/cancel").status_code == HTTPStatus.ACCEPTED

    assert joined.result()[-1].data["code"] == "cancelled"
    assert run_status(started["run_id"]) == "error"
    assert len(llm.requests) == 2  # stopped at a tool boundary: no third model call
    # The fetch in progress finished; the look-up after it never ran.
    fetched, looked_up = AgentRun.objects.get(pk=started["run_id"]).tool_calls
    assert fetched["ok"] is True
    assert looked_up["ok"] is False
    assert_every_tool_call_answered(uuid.UUID(started["thread_id"]))
    nxt = api.post(RUN, json={"message": "and now?", "thread_id": started["thread_id"]})
    assert nxt.status_code == HTTPStatus.OK, nxt.text


def test_the_worker_runs_several_runs_at_once_and_cancels_only_the_one_asked(api, llm):
    llm.responder = by_prompt(lambda said: Reply.text(SLOW_WORDS, chunk_delay=0.1))
    runs = [api.post(RUNS, json={"message": f"parallel {n}"}).json() for n in range(2)]
    wait_for(lambda: all(run_status(r["run_id"]) == "running" for r in runs), timeout=15)
    wait_for(lambda: llm.in_flight == 2, timeout=10)  # both answers stream at once
    assert api.post(f"{RUNS}/{runs[0]['run_id']}/cancel").status_code == HTTPStatus.ACCEPTED

    kept = api.get(f"{RUNS}/{runs[1]['run_id']}/wait", params={"timeout": 30})
    assert kept.status_code == HTTPStatus.OK
    assert kept.json()["response"] == SLOW_WORDS
    stopped = AgentRun.objects.get(pk=runs[0]["run_id"])
    assert stopped.status == "error"
    assert stopped.error.startswith("cancelled:")


# -- busy threads ----------------------------------------------------------------------------


def test_enqueue_runs_after_the_current_one_in_order(api, llm):
    first = busy_thread(api, llm)
    queued = [
        api.post(
            RUNS,
            json={
                "message": f"queued {n}",
                "thread_id": first["thread_id"],
                "multitask_strategy": "enqueue",
            },
        ).json()
        for n in range(2)
    ]
    assert all(q["status"] == "pending" for q in queued)
    sync = api.post(
        RUN,
        json={
            "message": "queued sync",
            "thread_id": first["thread_id"],
            "multitask_strategy": "enqueue",
        },
    )
    assert sync.status_code == HTTPStatus.OK, sync.text
    runs = list(AgentRun.objects.filter(thread_id=first["thread_id"]).order_by("started_at"))
    assert [r.input for r in runs] == ["first turn", "queued 0", "queued 1", "queued sync"]
    assert all(r.status == "success" for r in runs)
    assert all(r.background for r in runs)  # the sync request's run too: it waited its turn
    assert_one_at_a_time(runs)
    assert user_turns(llm.requests[-1]) == ["first turn", "queued 0", "queued 1", "queued sync"]


def test_interrupt_stops_the_run_on_the_worker_and_keeps_what_it_wrote(api, llm):
    first = busy_thread(api, llm, chunk_delay=0.3)
    second = api.post(
        RUN,
        json={
            "message": "never mind",
            "thread_id": first["thread_id"],
            "multitask_strategy": "interrupt",
        },
    )
    assert second.status_code == HTTPStatus.OK, second.text
    old = AgentRun.objects.get(pk=first["run_id"])
    assert old.status == "error"
    assert old.cancel_requested == "interrupt"
    assert "interrupted" in old.error
    assert user_turns(llm.requests[-1]) == ["first turn", "never mind"]


def test_rollback_stops_the_run_on_the_worker_and_removes_its_turn(api, llm):
    first = busy_thread(api, llm, chunk_delay=0.3)
    second = api.post(
        RUN,
        json={
            "message": "instead",
            "thread_id": first["thread_id"],
            "multitask_strategy": "rollback",
        },
    )
    assert second.status_code == HTTPStatus.OK, second.text
    old = AgentRun.objects.get(pk=first["run_id"])
    assert old.status == "error"
    assert old.cancel_requested == "rollback"
    # Neither the new run's model calls nor the thread's memory have the rolled-back turn.
    assert len(llm.requests) == 4  # the first run's plan and answer, then the new run's
    for request in llm.requests[2:]:
        assert user_turns(request) == ["instead"]
    thread = api.get(f"{THREADS}/{first['thread_id']}").json()
    assert [m["content"] for m in thread["messages"] if m["role"] == "user"] == ["instead"]


@pytest.mark.parametrize("strategy", ["reject", "enqueue"])
def test_background_runs_asked_at_the_same_instant_never_both_run(server_url, user, llm, strategy):
    llm.default_reply = Reply.text("ok", delay=0.2)
    thread_id = str(uuid.uuid4())
    barrier = threading.Barrier(6)
    answers: list[int] = []

    def send() -> None:
        with api_client(server_url, user) as client:
            barrier.wait()
            answers.append(
                client.post(
                    RUNS,
                    json={
                        "message": "at once",
                        "thread_id": thread_id,
                        "multitask_strategy": strategy,
                    },
                ).status_code
            )

    senders = [threading.Thread(target=send) for _ in range(6)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)
    expected = 1 if strategy == "reject" else 6
    assert sorted(answers) == [HTTPStatus.ACCEPTED] * expected + [HTTPStatus.CONFLICT] * (
        6 - expected
    )
    wait_for(
        lambda: AgentRun.objects.filter(thread_id=thread_id, status="success").count() == expected,
        timeout=30,
    )
    runs = list(AgentRun.objects.filter(thread_id=thread_id).order_by("started_at"))
    assert len(runs) == expected
    assert_one_at_a_time(runs)
    assert len(llm.requests) == 2 * expected  # a plan and an answer for each run, no more


# -- the broker is away ----------------------------------------------------------------------


def test_a_background_run_is_accepted_while_the_broker_is_away(env, user, llm):
    """The run is recorded (pending) before it is handed to the workers: a broker that cannot
    be reached delays it (the sweeper hands waiting runs on again), it never fails the
    request."""
    away = {**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with run_server(away, keep_log=True) as url, api_client(url, user) as api:
        started = api.post(RUNS, json={"message": "later, please"})
        assert started.status_code == HTTPStatus.ACCEPTED, started.text
        run_id = started.json()["run_id"]
        assert run_status(run_id) == "pending"
        cancelled = api.post(f"{RUNS}/{run_id}/cancel")  # a pending run needs no worker
        assert cancelled.status_code == HTTPStatus.ACCEPTED
        assert cancelled.json()["status"] == "error"
    log = server_log_path(url)
    try:
        assert f"Could not hand run {run_id} to the background executor" in log.read_text()
    finally:
        log.unlink()


# -- a worker that dies ----------------------------------------------------------------------


def sweep_runs(env: dict[str, str], *args: str) -> str:
    """``manage.py sweep_runs``, as an operator runs it, with the processes' settings."""
    done = subprocess.run(
        [sys.executable, "manage.py", "sweep_runs", *args],
        cwd=BASE_DIR, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.parametrize("sweeper", ["command", "worker_start"])
def test_a_killed_workers_run_stays_running_until_the_sweeper_hands_its_thread_on(
    server_url, api, user, llm, worker, env, sweeper
):
    first = busy_thread(api, llm, chunk_delay=0.3)
    queued = api.post(
        RUNS,
        json={"message": "next", "thread_id": first["thread_id"], "multitask_strategy": "enqueue"},
    ).json()

    worker.kill()  # SIGKILL: no warm shutdown, no finish, no hand-on
    wait_for(lambda: llm.cancelled_count == 1, timeout=5)  # its model request died with it
    time.sleep(1.0)
    assert run_status(first["run_id"]) == "running"  # nothing ends it: no process has it
    assert run_status(queued["run_id"]) == "pending"

    if sweeper == "command":  # an operator's sweep, then a worker comes back
        out = sweep_runs(env, "--older-than", "0")
        assert f"ended run {first['run_id']}" in out
        assert queued["run_id"] not in out  # waiting its turn is not being abandoned
        assert run_status(queued["run_id"]) == "pending"  # until a worker takes it
        worker.start()
    else:  # a fresh worker sweeps when it starts: runs older than its stale age
        worker.env = {**env, "AGENT_RUN_STALE_AFTER_SECONDS": "1"}
        try:
            worker.start()
        finally:
            worker.env = env

    swept = api.get(f"{RUNS}/{first['run_id']}/wait", params={"timeout": 10})
    assert swept.status_code == HTTPStatus.SERVICE_UNAVAILABLE, swept.text
    assert swept.json()["code"] == "abandoned"
    events = join(server_url, user, first["run_id"])
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "abandoned"
    # The thread's next run executes on the fresh worker.
    nxt = api.get(f"{RUNS}/{queued['run_id']}/wait", params={"timeout": 30})
    assert nxt.status_code == HTTPStatus.OK, (nxt.text, worker.log()[-3000:])
    assert nxt.json()["response"] == "echo: next"
    assert_every_tool_call_answered(uuid.UUID(first["thread_id"]))
    if sweeper == "worker_start":
        worker.stop()  # the next test's worker sweeps at its own age
