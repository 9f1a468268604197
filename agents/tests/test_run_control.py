"""Run control on a live server (uvicorn, the real langchain-openai client against the fake
OpenAI server): background runs, waiting, joining a stream from the start and from a
``Last-Event-ID``, cancelling, the four ``multitask_strategy`` values (two requests at the same
instant included) and ``on_disconnect``. The event log is Redis in the services run and the
server's own memory on the embedded default; the background executor is the server's own
process (a Celery worker's turn is ``test_run_control_celery.py``)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from agents.tests.test_runner import assert_every_tool_call_answered
from testing.live import api_client, fake_llm_env, run_server, wait_for
from testing.llm_server import FakeLLMServer, Reply
from testing.metrics import scraped_sample
from testing.sse import Event, read_events

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
RUNS = "/api/v1/agent/runs"
THREADS = "/api/v1/agent/threads"
SLOW_WORDS = " ".join(f"word{n}" for n in range(24))


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(
        llm.base_url,
        LLM_TIMEOUT_SECONDS="20",
        AGENT_STREAM_HEARTBEAT_SECONDS="0.5",
        AGENT_RUN_CANCEL_POLL_SECONDS="0.1",
        AGENT_RUNS_BACKEND="embedded",
    )
    with run_server(env) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_llm(llm: FakeLLMServer) -> None:
    llm.reset()
    llm.responder = None


@pytest.fixture
def user() -> Any:
    return UserFactory()


@pytest.fixture
def api(server_url: str, user: Any) -> Iterator[httpx.Client]:
    with api_client(server_url, user) as client:
        yield client


def slow_answer(llm: FakeLLMServer, *, chunk_delay: float = 0.1) -> None:
    """The next run: a plan, then an answer of 24 words streamed ``chunk_delay`` apart."""
    llm.enqueue(Reply.text("1. Answer."), Reply.text(SLOW_WORDS, chunk_delay=chunk_delay))


def join(api: httpx.Client, run_id: str, *, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with api.stream("GET", f"{RUNS}/{run_id}/stream", headers=headers) as response:
        assert response.status_code == HTTPStatus.OK
        return [e for e in read_events(response) if e.event != "comment"]


def assert_one_at_a_time(runs: list[AgentRun]) -> None:
    """Each run started after the one before it had finished."""
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert later.started_at is not None
        assert earlier.finished_at <= later.started_at


def run_status(run_id: str) -> str:
    return AgentRun.objects.values_list("status", flat=True).get(pk=run_id)


# -- background runs and wait ------------------------------------------------------------------


def test_a_background_run_goes_pending_to_success_and_wait_answers_the_run_body(api, llm):
    slow_answer(llm, chunk_delay=0.02)
    started = api.post(RUNS, json={"message": "Tell me something.", "metadata": {"k": "v"}})
    assert started.status_code == HTTPStatus.ACCEPTED, started.text
    body = started.json()
    assert set(body) == {"run_id", "thread_id", "status"}
    assert body["status"] == "pending"
    assert started.headers["Location"].endswith(f"{RUNS}/{body['run_id']}")

    waited = api.get(f"{RUNS}/{body['run_id']}/wait", params={"timeout": 20})
    assert waited.status_code == HTTPStatus.OK, waited.text
    result = waited.json()
    assert result["status"] == "success"
    assert result["response"] == SLOW_WORDS
    assert result["run_id"] == body["run_id"]
    assert result["thread_id"] == body["thread_id"]
    assert result["usage"]["total_tokens"] == 36

    detail = api.get(f"{RUNS}/{body['run_id']}").json()
    assert detail["status"] == "success"
    assert detail["background"] is True
    assert detail["result"] == result
    assert detail["started_at"]
    assert detail["finished_at"]
    assert detail["metadata"] == {"k": "v"}


def test_wait_times_out_with_202_and_the_current_status(api, llm):
    slow_answer(llm, chunk_delay=0.2)
    run_id = api.post(RUNS, json={"message": "slow"}).json()["run_id"]
    waited = api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 0.5})
    assert waited.status_code == HTTPStatus.ACCEPTED
    assert waited.json()["status"] in ("pending", "running")
    assert api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 30}).json()["status"] == "success"


def test_wait_answers_a_failed_run_as_agent_run_does(api, llm):
    llm.enqueue(Reply.text("1. Answer."), Reply.error(500, "boom"))
    run_id = api.post(RUNS, json={"message": "fail please"}).json()["run_id"]
    waited = api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 20})
    assert waited.status_code == HTTPStatus.BAD_GATEWAY
    body = waited.json()
    assert body["code"] == "llm_unavailable"
    assert body["run_id"] == run_id
    assert api.get(f"{RUNS}/{run_id}").json()["result"]["code"] == "llm_unavailable"


@pytest.mark.parametrize("timeout", ["-1", "abc", "nan", "100000"])
def test_a_bad_wait_timeout_is_a_400(api, llm, timeout):
    run_id = api.post(RUNS, json={"message": "hi"}).json()["run_id"]
    response = api.get(f"{RUNS}/{run_id}/wait", params={"timeout": timeout})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "timeout" in response.json()["errors"]


def test_background_runs_validate_like_agent_run(api):
    assert api.post(RUNS, json={"message": ""}).status_code == HTTPStatus.BAD_REQUEST
    bad = api.post(RUNS, json={"message": "hi", "multitask_strategy": "shout"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert "multitask_strategy" in bad.json()["errors"]


def test_another_users_run_is_not_found_on_every_endpoint(server_url, api, llm):
    run_id = api.post(RUNS, json={"message": "mine"}).json()["run_id"]
    with api_client(server_url, UserFactory()) as other:
        for method, path in (
            ("GET", f"{RUNS}/{run_id}"),
            ("GET", f"{RUNS}/{run_id}/wait?timeout=0"),
            ("GET", f"{RUNS}/{run_id}/stream"),
            ("POST", f"{RUNS}/{run_id}/cancel"),
        ):
            response = other.request(method, path)
            assert response.status_code == HTTPStatus.NOT_FOUND, (path, response.text)
            assert response.json()["code"] == "not_found"


# -- joining a stream ------------------------------------------------------------------------


def test_every_stream_event_has_an_increasing_id(api, llm):
    slow_answer(llm, chunk_delay=0.0)
    with api.stream("POST", STREAM, json={"message": "ids"}) as response:
        events = [e for e in read_events(response) if e.event != "comment"]
    ids = [int(e.id or 0) for e in events]
    assert ids == list(range(1, len(events) + 1))
    assert events[0].event == "run"
    assert events[-1].event == "done"


def test_join_from_the_start_and_from_a_last_event_id_loses_and_repeats_nothing(api, llm):
    slow_answer(llm, chunk_delay=0.1)
    run_id = api.post(RUNS, json={"message": "stream me"}).json()["run_id"]

    first: list[Event] = []
    with api.stream("GET", f"{RUNS}/{run_id}/stream") as response:
        for event in read_events(response):
            if event.event == "comment":
                continue
            first.append(event)
            if sum(e.event == "token" for e in first) == 5:
                break  # the client goes away mid-answer
    assert run_status(run_id) == "running"  # leaving a join does not stop the run

    rest = join(api, run_id, last_event_id=first[-1].id)
    everything = join(api, run_id)
    assert [e.id for e in first + rest] == [e.id for e in everything]
    assert [(e.event, e.data) for e in first + rest] == [(e.event, e.data) for e in everything]
    assert rest[-1].event == "done"
    assert "".join(e.data["text"] for e in everything if e.event == "token").split() == (
        SLOW_WORDS.split()
    )


def test_several_clients_follow_one_run(api, llm):
    slow_answer(llm, chunk_delay=0.05)
    run_id = api.post(RUNS, json={"message": "many"}).json()["run_id"]
    results: list[list[Event]] = []
    threads = [threading.Thread(target=lambda: results.append(join(api, run_id))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3
    assert all([e.id for e in r] == [e.id for e in results[0]] for r in results)
    assert results[0][-1].event == "done"


def test_a_malformed_last_event_id_is_ignored(api, llm):
    run_id = api.post(RUNS, json={"message": "x"}).json()["run_id"]
    api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 20})
    events = join(api, run_id, last_event_id="not-a-number")
    assert events[0].id == "1"
    assert events[-1].event == "done"


# -- cancel --------------------------------------------------------------------------------


def test_cancel_stops_a_running_run_and_the_joined_stream_gets_the_error(api, llm):
    slow_answer(llm, chunk_delay=0.2)
    run_id = api.post(RUNS, json={"message": "long one"}).json()["run_id"]
    wait_for(lambda: run_status(run_id) == "running", timeout=10)
    joined: list[list[Event]] = []
    follower = threading.Thread(target=lambda: joined.append(join(api, run_id)))
    follower.start()
    time.sleep(0.5)

    cancelled = api.post(f"{RUNS}/{run_id}/cancel")
    assert cancelled.status_code == HTTPStatus.ACCEPTED, cancelled.text
    assert cancelled.json()["cancel_requested"] == "cancel"
    result = api.get(f"{RUNS}/{run_id}/wait", params={"timeout": 10})
    assert result.status_code == HTTPStatus.CONFLICT
    assert result.json()["code"] == "cancelled"
    follower.join(10)
    assert joined
    assert joined[0][-1].event == "error"
    assert joined[0][-1].data["code"] == "cancelled"
    run = AgentRun.objects.get(pk=run_id)
    assert run.status == "error"
    assert run.error.startswith("cancelled:")
    assert len([e for e in joined[0] if e.event == "token"]) < len(SLOW_WORDS.split())

    again = api.post(f"{RUNS}/{run_id}/cancel")
    assert again.status_code == HTTPStatus.CONFLICT
    assert again.json()["code"] == "run_not_active"


def test_a_cancelled_runs_open_tool_calls_are_answered_and_the_thread_goes_on(api, llm, user):
    llm.enqueue(
        Reply.text("1. Look up."),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})], delay=1.5),
    )
    started = api.post(RUNS, json={"message": "who am I?"}).json()
    wait_for(lambda: run_status(started["run_id"]) == "running", timeout=10)
    time.sleep(0.3)
    assert api.post(f"{RUNS}/{started['run_id']}/cancel").status_code == HTTPStatus.ACCEPTED
    api.get(f"{RUNS}/{started['run_id']}/wait", params={"timeout": 15})
    assert run_status(started["run_id"]) == "error"
    assert_every_tool_call_answered(uuid.UUID(started["thread_id"]))
    nxt = api.post(RUN, json={"message": "and now?", "thread_id": started["thread_id"]})
    assert nxt.status_code == HTTPStatus.OK, nxt.text


# -- busy threads ----------------------------------------------------------------------------


def busy_thread(api: httpx.Client, llm: FakeLLMServer, *, chunk_delay: float = 0.15) -> dict:
    slow_answer(llm, chunk_delay=chunk_delay)
    first = api.post(RUNS, json={"message": "first turn"}).json()
    wait_for(lambda: run_status(first["run_id"]) == "running", timeout=10)
    return first


def test_reject_is_the_default_409_thread_busy(api, llm):
    first = busy_thread(api, llm)
    for path in (RUN, RUNS):
        busy = api.post(path, json={"message": "second", "thread_id": first["thread_id"]})
        assert busy.status_code == HTTPStatus.CONFLICT
        assert busy.json()["code"] == "thread_busy"


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
    assert_one_at_a_time(runs)
    # Each run saw the turns before it.
    last_request = llm.requests[-1]["messages"]
    said = [m.get("content") for m in last_request if m.get("role") == "user"]
    assert said[:4] == ["first turn", "queued 0", "queued 1", "queued sync"]


def test_interrupt_cancels_the_current_run_and_keeps_what_it_wrote(api, llm):
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
    said = [m.get("content") for m in llm.requests[-1]["messages"] if m.get("role") == "user"]
    assert said == ["first turn", "never mind"]  # the interrupted turn stays in memory


def test_rollback_cancels_the_current_run_and_removes_its_turn(api, llm):
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
    said = [m.get("content") for m in llm.requests[-1]["messages"] if m.get("role") == "user"]
    assert said == ["instead"]  # the rolled-back turn is gone from memory
    thread = api.get(f"{THREADS}/{first['thread_id']}").json()
    assert [m["content"] for m in thread["messages"] if m["role"] == "user"] == ["instead"]


def test_a_pending_run_is_cancelled_at_once(api, llm):
    first = busy_thread(api, llm)
    queued = api.post(
        RUNS,
        json={"message": "later", "thread_id": first["thread_id"], "multitask_strategy": "enqueue"},
    ).json()
    cancelled = api.post(f"{RUNS}/{queued['run_id']}/cancel")
    assert cancelled.status_code == HTTPStatus.ACCEPTED
    assert cancelled.json()["status"] == "error"
    events = join(api, queued["run_id"])
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "cancelled"
    assert api.get(f"{RUNS}/{first['run_id']}/wait", params={"timeout": 20}).status_code == 200
    assert run_status(queued["run_id"]) == "error"  # it never ran


@pytest.mark.parametrize("strategy", ["reject", "enqueue"])
def test_two_requests_at_the_same_instant_never_both_run(server_url, user, llm, strategy):
    llm.default_reply = Reply.text("ok", delay=0.2)
    try:
        thread_id = str(uuid.uuid4())
        barrier = threading.Barrier(6)
        answers: list[int] = []

        def send() -> None:
            with api_client(server_url, user) as client:
                barrier.wait()
                answers.append(
                    client.post(
                        RUN,
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
        runs = list(AgentRun.objects.filter(thread_id=thread_id).order_by("started_at"))
        assert_one_at_a_time(runs)  # never two at once
        if strategy == "reject":
            assert sorted(answers) == [200] + [409] * 5
            assert len(runs) == 1
        else:
            assert answers == [200] * 6
            assert len(runs) == 6
            assert all(r.status == "success" for r in runs)
    finally:
        llm.default_reply = None


# -- on_disconnect ---------------------------------------------------------------------------


def test_on_disconnect_continue_lets_the_run_go_on_and_be_joined(api, llm):
    slow_answer(llm, chunk_delay=0.1)
    seen: list[Event] = []
    with api.stream("POST", STREAM, json={"message": "go on", "on_disconnect": "continue"}) as r:
        assert r.status_code == HTTPStatus.OK
        for event in read_events(r):
            if event.event == "comment":
                continue
            seen.append(event)
            if event.event == "token":
                break  # the connection drops mid-answer
    run_id = seen[0].data["run_id"]
    rest = join(api, run_id, last_event_id=seen[-1].id)
    assert rest[-1].event == "done"
    assert rest[-1].data["response"] == SLOW_WORDS
    assert int(rest[0].id) == int(seen[-1].id) + 1
    assert run_status(run_id) == "success"


def test_on_disconnect_cancel_stops_the_run(api, llm):
    slow_answer(llm, chunk_delay=0.2)
    run_id, tokens = None, 0
    with api.stream("POST", STREAM, json={"message": "stop when I go"}) as r:
        for event in read_events(r):
            if event.event == "run":
                run_id = event.data["run_id"]
            tokens += event.event == "token"
            if tokens == 2:
                break  # the client goes away mid-answer (on_disconnect defaults to cancel)
    assert run_id is not None
    wait_for(lambda: run_status(run_id) == "error", timeout=10)
    run = AgentRun.objects.get(pk=run_id)
    assert run.error == "cancelled: the client disconnected"
    assert run.response == ""


def test_on_disconnect_is_validated(api):
    response = api.post(STREAM, json={"message": "x", "on_disconnect": "later"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "on_disconnect" in response.json()["errors"]


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_count_runs_by_status_with_pending_and_the_queue_wait(server_url, api, llm):
    first = busy_thread(api, llm, chunk_delay=0.2)
    queued = api.post(
        RUNS,
        json={"message": "later", "thread_id": first["thread_id"], "multitask_strategy": "enqueue"},
    ).json()
    scraped = httpx.get(f"{server_url}/metrics").text
    assert scraped_sample(scraped, "agent_runs", status="pending") >= 1
    assert scraped_sample(scraped, "agent_runs", status="running") >= 1
    waits = scraped_sample(scraped, "agent_run_queue_wait_seconds_count")
    api.get(f"{RUNS}/{queued['run_id']}/wait", params={"timeout": 30})
    scraped = httpx.get(f"{server_url}/metrics").text
    assert scraped_sample(scraped, "agent_run_queue_wait_seconds_count") == waits + 1
    assert scraped_sample(scraped, "agent_runs_queued_total") >= 2
