"""SSE runs on a live ASGI server (uvicorn), against a slowly streaming OpenAI-compatible LLM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from agents.models import AgentRun, AgentThread
from agents.serializers import RunResultSerializer
from testing.live import fake_llm_env, run_server, wait_for
from testing.llm_server import FakeLLMServer, Reply
from testing.sse import Event, read_events

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

STREAM = "/api/v1/agent/run/stream"


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(llm.base_url, LLM_TIMEOUT_SECONDS="10", AGENT_STREAM_HEARTBEAT_SECONDS="0.3")
    with run_server(env) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_llm(llm: FakeLLMServer) -> None:
    llm.reset()


def auth(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


def test_events_arrive_in_order_and_tokens_stream_before_the_llm_finishes(server_url, llm):
    user = UserFactory()
    words = "The answer arrives one word at a time, as the model writes it."
    llm.enqueue(
        Reply.text("1. Look up the user.\n2. Answer.", prompt_tokens=20, completion_tokens=8),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})], prompt_tokens=30),
        Reply.text(words, prompt_tokens=40, completion_tokens=13, chunk_delay=0.15),
    )
    events: list[Event] = []
    with httpx.stream(
        "POST",
        f"{server_url}{STREAM}",
        json={"message": f"Who is {user.email}?", "metadata": {"source": "test"}},
        headers={**auth(user), "Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        assert response.status_code == HTTPStatus.OK
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in read_events(response) if e.event != "comment"]

    kinds = [e.event for e in events]
    assert kinds[:4] == ["run", "plan", "tool_call", "tool_result"]
    assert kinds[-1] == "done"
    assert kinds.count("token") >= 5
    assert events[2].data == {"name": "lookup_user_by_email", "args": {"email": user.email}}
    assert events[3].data["ok"] is True
    assert "".join(e.data["text"] for e in events if e.event == "token") == words

    # The first token reached us well before the LLM server finished writing the answer.
    first_token = next(e.at for e in events if e.event == "token")
    assert first_token < llm.finished_at[-1] - 0.5

    done = events[-1].data
    assert {"response", "thread_id", "trace_id", "run_id", "latency_ms", "status", "plan"} <= set(
        done
    )
    assert done["status"] == "success"
    assert done["response"] == words
    assert done["run_id"] == events[0].data["run_id"]

    run = AgentRun.objects.get(pk=done["run_id"])
    assert run.status == AgentRun.Status.SUCCESS
    assert run.response == words
    # ``done`` is the body ``POST /agent/run`` answers: the output serializer's.
    assert done == json.loads(json.dumps(RunResultSerializer(run).data))
    # Usage recorded for streamed runs, exactly as the server reported it (stream_usage).
    assert (run.prompt_tokens, run.completion_tokens) == (20 + 30 + 40, 8 + 7 + 13)
    assert run.tool_calls[0]["name"] == "lookup_user_by_email"
    assert run.metadata == {"source": "test"}


def test_disconnecting_stops_the_run_and_the_llm_request(server_url, llm):
    user = UserFactory()
    long_answer = " ".join(f"word{i}" for i in range(60))
    llm.enqueue(Reply.text("1. Answer."), Reply.text(long_answer, chunk_delay=0.2))
    with httpx.stream(
        "POST", f"{server_url}{STREAM}", json={"message": "Tell me a long story"},
        headers=auth(user), timeout=30,
    ) as response:  # fmt: skip
        for event in read_events(response):
            if event.event == "token":
                break  # leave mid-answer

    run = wait_for(
        lambda: AgentRun.objects.filter(user=user).exclude(status=AgentRun.Status.RUNNING).first()
    )
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    # The LLM stream was closed long before it would have finished (60 words x 0.2 s).
    wait_for(lambda: llm.cancelled_count >= 1, timeout=5)
    assert run.latency_ms is not None
    assert run.latency_ms < 8000


def test_invalid_requests_are_json_errors_before_any_stream(server_url):
    user, other = UserFactory(), UserFactory()
    foreign = AgentThread.objects.create(owner=other, title="theirs")
    headers = {**auth(user), "Accept": "text/event-stream"}

    empty = httpx.post(f"{server_url}{STREAM}", json={"message": "  "}, headers=headers)
    assert empty.status_code == HTTPStatus.BAD_REQUEST
    assert empty.json()["errors"]["message"]

    theirs = httpx.post(
        f"{server_url}{STREAM}",
        json={"message": "hi", "thread_id": str(foreign.id)},
        headers=headers,
    )
    assert theirs.status_code == HTTPStatus.NOT_FOUND
    assert theirs.json()["code"] == "not_found"

    anonymous = httpx.post(f"{server_url}{STREAM}", json={"message": "hi"})
    assert anonymous.status_code == HTTPStatus.UNAUTHORIZED
    assert not AgentRun.objects.exists()


def test_heartbeats_keep_an_idle_stream_alive(server_url, llm):
    user = UserFactory()
    llm.enqueue(Reply.text("1. Answer.", delay=1.2), Reply.text("Done."))
    with httpx.stream(
        "POST", f"{server_url}{STREAM}", json={"message": "hi"}, headers=auth(user), timeout=30
    ) as response:
        events = list(read_events(response))
    before_plan = events[: [e.event for e in events].index("plan")]
    assert sum(1 for e in before_plan if e.data == "heartbeat") >= 2
    assert events[-1].event == "done"


def test_llm_failure_is_an_error_event_and_a_stored_run(server_url, llm):
    user = UserFactory()
    llm.enqueue(Reply.error(500))
    with httpx.stream(
        "POST", f"{server_url}{STREAM}", json={"message": "hi"}, headers=auth(user), timeout=30
    ) as response:
        events = [e for e in read_events(response) if e.event != "comment"]
    assert [e.event for e in events] == ["run", "error"]
    assert events[1].data["code"] == "llm_unavailable"
    assert events[1].data["run_id"] == events[0].data["run_id"]
    run = AgentRun.objects.get(pk=events[0].data["run_id"])
    assert run.status == AgentRun.Status.ERROR
