"""Human approval before side-effecting tools, on a live server (uvicorn, the real
langchain-openai client against the fake OpenAI server): an ``http_post`` call pauses the run
(``interrupted``); resuming it with approve (the canary, a listener this test starts and the
HTTP tools may reach, receives the request), reject (it never does) or edit (it receives the
edited body); another user's resume is 404, a second one 409; the thread's strategies on an
interrupted thread; the approval TTL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from agents.tests.test_runner import assert_every_tool_call_answered
from testing.canary import Canary
from testing.live import api_client, fake_llm_env, run_server
from testing.llm_server import FakeLLMServer, Reply
from testing.metrics import scraped_sample
from testing.sse import read_events

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

RUN = "/api/v1/agent/run"
STREAM = "/api/v1/agent/run/stream"
RUNS = "/api/v1/agent/runs"
THREADS = "/api/v1/agent/threads"


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def llm(module_llm_server: FakeLLMServer) -> FakeLLMServer:
    return module_llm_server


@pytest.fixture(scope="module")
def server_url(django_db_setup: None, llm: FakeLLMServer) -> Iterator[str]:
    env = fake_llm_env(
        llm.base_url,
        LLM_TIMEOUT_SECONDS="20",
        HTTP_TOOL_ALLOWED_NETWORKS="127.0.0.0/8",
        AGENT_APPROVAL_REQUIRED_TOOLS="http_post",
        AGENT_APPROVAL_TTL_HOURS="1",
        AGENT_RUNS_BACKEND="embedded",
        AGENT_STREAM_HEARTBEAT_SECONDS="0.5",
    )
    with run_server(env) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(llm: FakeLLMServer, canary: Canary) -> None:
    llm.reset()
    canary.received.clear()


@pytest.fixture
def user() -> Any:
    return UserFactory()


@pytest.fixture
def api(server_url: str, user: Any) -> Iterator[httpx.Client]:
    with api_client(server_url, user) as client:
        yield client


def post_call(canary: Canary, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("http_post", {"url": f"{canary.url}/hook", "json_body": body})


def interrupted_run(api: httpx.Client, llm: FakeLLMServer, canary: Canary) -> dict[str, Any]:
    """A run whose model wants to POST to the canary (and look up the caller alongside)."""
    llm.enqueue(
        Reply.text("1. Post the order.\n2. Answer."),
        Reply.tool_calls([post_call(canary, {"order": 42}), ("lookup_user_items", {})], content=""),
    )
    response = api.post(RUN, json={"message": "Order item 42 for me."})
    assert response.status_code == HTTPStatus.OK, response.text
    body = response.json()
    assert body["status"] == "interrupted"
    return body


def test_a_call_to_an_approval_tool_pauses_the_run_and_nothing_is_sent(api, llm, canary):
    body = interrupted_run(api, llm, canary)

    calls = body["interrupt"]["tool_calls"]
    assert [c["name"] for c in calls] == ["http_post"]
    assert calls[0]["args"] == {"url": f"{canary.url}/hook", "json_body": {"order": 42}}
    assert calls[0]["id"]
    assert canary.received == []  # nothing ran, not even the call that needs no approval
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.status == "interrupted"
    assert run.interrupt == body["interrupt"]
    assert [c["ok"] for c in run.tool_calls] == [None, None]
    detail = api.get(f"{RUNS}/{body['run_id']}").json()
    assert detail["status"] == "interrupted"
    assert detail["interrupt"] == body["interrupt"]
    assert detail["decision"] == ""


def test_approve_runs_the_call_as_a_new_linked_run(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("Ordered."))

    resumed = api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"})

    assert resumed.status_code == HTTPStatus.OK, resumed.text
    result = resumed.json()
    assert result["status"] == "success"
    assert result["response"] == "Ordered."
    assert result["thread_id"] == body["thread_id"]
    assert result["run_id"] != body["run_id"]
    assert [json.loads(r["body"]) for r in canary.received] == [{"order": 42}]
    new = AgentRun.objects.get(pk=result["run_id"])
    assert new.resumed_from_id == uuid.UUID(body["run_id"])
    assert [(c["name"], c["ok"]) for c in new.tool_calls] == [
        ("http_post", True),
        ("lookup_user_items", True),
    ]
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "approve"
    assert_every_tool_call_answered(uuid.UUID(body["thread_id"]))


def test_reject_answers_the_call_with_the_refusal_and_never_sends_it(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("Understood, I did not order it."))

    resumed = api.post(
        f"{RUNS}/{body['run_id']}/resume",
        json={"decision": "reject", "comment": "Not this week."},
    )

    assert resumed.status_code == HTTPStatus.OK, resumed.text
    assert resumed.json()["response"] == "Understood, I did not order it."
    assert canary.received == []
    tool_messages = [m for m in llm.requests[-1]["messages"] if m.get("role") == "tool"]
    refusal = next(m for m in tool_messages if "rejected" in str(m.get("content")))
    assert "Not this week." in str(refusal["content"])
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "reject"


def test_edit_runs_the_call_with_the_new_arguments(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("Ordered 7 instead."))
    edited = {"url": f"{canary.url}/hook", "json_body": {"order": 7}}

    resumed = api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "edit", "args": edited})

    assert resumed.status_code == HTTPStatus.OK, resumed.text
    assert [json.loads(r["body"]) for r in canary.received] == [{"order": 7}]
    new = AgentRun.objects.get(pk=resumed.json()["run_id"])
    assert new.tool_calls[0]["args"] == edited
    # The model sees the call as it was run.
    ai = [m for m in llm.requests[-1]["messages"] if m.get("tool_calls")][-1]
    assert json.loads(ai["tool_calls"][0]["function"]["arguments"]) == edited


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "edit", "args": {"url": 12}},
        {"decision": "edit", "args": {}},
        {"decision": "edit"},
        {"decision": "maybe"},
        {"decision": "approve", "args": {"url": "x"}},
    ],
)
def test_a_bad_resume_is_a_400_and_leaves_the_run_waiting(api, llm, canary, body):
    run = interrupted_run(api, llm, canary)
    response = api.post(f"{RUNS}/{run['run_id']}/resume", json=body)
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    assert response.json()["code"] == "invalid"
    assert AgentRun.objects.get(pk=run["run_id"]).decision == ""
    assert canary.received == []


def test_resume_by_another_user_is_404_and_a_second_resume_409(server_url, api, llm, canary):
    body = interrupted_run(api, llm, canary)
    with api_client(server_url, UserFactory()) as other:
        foreign = other.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"})
    assert foreign.status_code == HTTPStatus.NOT_FOUND
    assert canary.received == []

    llm.enqueue(Reply.text("Done."))
    assert (
        api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"}).status_code
        == HTTPStatus.OK
    )
    again = api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"})
    assert again.status_code == HTTPStatus.CONFLICT
    assert again.json()["code"] == "run_not_interrupted"
    assert len(canary.received) == 1

    finished = api.post(f"{RUNS}/{again.json().get('run_id') or body['run_id']}/resume", json={})
    assert finished.status_code == HTTPStatus.BAD_REQUEST


def test_a_finished_run_cannot_be_resumed(api, llm):
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Hello."))
    run_id = api.post(RUN, json={"message": "hi"}).json()["run_id"]
    response = api.post(f"{RUNS}/{run_id}/resume", json={"decision": "approve"})
    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["code"] == "run_not_interrupted"


def test_a_stream_ends_with_the_interrupt_event_and_resume_streams(api, llm, canary):
    llm.enqueue(
        Reply.text("1. Post."),
        Reply.tool_calls([post_call(canary, {"order": 1})], content=""),
    )
    with api.stream("POST", STREAM, json={"message": "post it"}) as response:
        events = [e for e in read_events(response) if e.event != "comment"]
    assert events[-1].event == "interrupt"
    run_id = events[0].data["run_id"]
    assert events[-1].data == AgentRun.objects.get(pk=run_id).interrupt

    llm.enqueue(Reply.text("Posted it."))
    with api.stream(
        "POST", f"{RUNS}/{run_id}/resume", json={"decision": "approve", "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        resumed = [e for e in read_events(response) if e.event != "comment"]
    assert [e.event for e in resumed][-1] == "done"
    assert any(e.event == "tool_result" and e.data["name"] == "http_post" for e in resumed)
    assert resumed[-1].data["response"] == "Posted it."
    assert len(canary.received) == 1


def test_a_streamed_resume_with_on_disconnect_continue_outlives_its_client(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text(" ".join(f"w{i}" for i in range(30)), chunk_delay=0.1))
    resume = {"decision": "approve", "stream": True, "on_disconnect": "continue"}
    with api.stream("POST", f"{RUNS}/{body['run_id']}/resume", json=resume) as response:
        assert response.status_code == HTTPStatus.OK
        for event in read_events(response):
            if event.event == "run":
                resumed_id = event.data["run_id"]
            if event.event == "token":
                break  # the client leaves mid-answer
    with api.stream("GET", f"{RUNS}/{resumed_id}/stream") as response:
        rest = [e for e in read_events(response) if e.event != "comment"]
    assert rest[-1].event == "done"
    assert rest[-1].data["response"].endswith("w29")
    assert AgentRun.objects.get(pk=resumed_id).status == AgentRun.Status.SUCCESS
    assert len(canary.received) == 1


def test_background_resume_answers_202(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("Later, done."))
    accepted = api.post(
        f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve", "background": True}
    )
    assert accepted.status_code == HTTPStatus.ACCEPTED
    waited = api.get(f"{RUNS}/{accepted.json()['run_id']}/wait", params={"timeout": 20})
    assert waited.json()["response"] == "Later, done."
    assert len(canary.received) == 1


def test_a_new_message_on_an_interrupted_thread_follows_the_strategy(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    thread = body["thread_id"]

    rejected = api.post(RUN, json={"message": "hello?", "thread_id": thread})
    assert rejected.status_code == HTTPStatus.CONFLICT
    assert rejected.json()["code"] == "thread_interrupted"

    llm.enqueue(Reply.text("1. Answer."), Reply.text("Moving on."))
    moved = api.post(
        RUN,
        json={
            "message": "forget the order",
            "thread_id": thread,
            "multitask_strategy": "interrupt",
        },
    )
    assert moved.status_code == HTTPStatus.OK, moved.text
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "superseded"
    assert canary.received == []
    assert_every_tool_call_answered(uuid.UUID(thread))
    gone = api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"})
    assert gone.status_code == HTTPStatus.CONFLICT


def test_rollback_on_an_interrupted_thread_removes_its_turn(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Fresh start."))
    moved = api.post(
        RUN,
        json={
            "message": "instead",
            "thread_id": body["thread_id"],
            "multitask_strategy": "rollback",
        },
    )
    assert moved.status_code == HTTPStatus.OK, moved.text
    said = [m.get("content") for m in llm.requests[-1]["messages"] if m.get("role") == "user"]
    assert said == ["instead"]


def test_enqueue_on_an_interrupted_thread_waits_for_the_decision(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    queued = api.post(
        RUNS,
        json={
            "message": "after that",
            "thread_id": body["thread_id"],
            "multitask_strategy": "enqueue",
        },
    ).json()
    assert api.get(f"{RUNS}/{queued['run_id']}/wait", params={"timeout": 1}).status_code == 202
    llm.enqueue(Reply.text("Ordered."), Reply.text("1. Answer."), Reply.text("Next one."))
    assert (
        api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"}).status_code
        == HTTPStatus.OK
    )
    waited = api.get(f"{RUNS}/{queued['run_id']}/wait", params={"timeout": 20})
    assert waited.status_code == HTTPStatus.OK, waited.text
    assert waited.json()["response"] == "Next one."


def test_an_approval_not_given_in_time_is_closed_as_rejected(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    AgentRun.objects.filter(pk=body["run_id"]).update(
        finished_at=timezone.now() - timedelta(hours=2)
    )
    late = api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "approve"})
    assert late.status_code == HTTPStatus.CONFLICT
    assert "expired" in late.json()["detail"]
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "expired"
    assert canary.received == []
    assert_every_tool_call_answered(uuid.UUID(body["thread_id"]))
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Back."))
    nxt = api.post(RUN, json={"message": "hi again", "thread_id": body["thread_id"]})
    assert nxt.status_code == HTTPStatus.OK, nxt.text


def test_the_sweep_closes_expired_approvals(api, llm, canary, settings):
    from agents.sweeper import run_sweep_safely

    body = interrupted_run(api, llm, canary)
    AgentRun.objects.filter(pk=body["run_id"]).update(
        finished_at=timezone.now() - timedelta(hours=30)
    )
    settings.AGENT_APPROVAL_TTL_HOURS = 24
    run_sweep_safely()
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "expired"
    assert_every_tool_call_answered(uuid.UUID(body["thread_id"]))


def test_decisions_are_counted(server_url, api, llm, canary):
    before = httpx.get(f"{server_url}/metrics").text
    body = interrupted_run(api, llm, canary)
    llm.enqueue(Reply.text("ok"))
    api.post(f"{RUNS}/{body['run_id']}/resume", json={"decision": "reject"})
    after = httpx.get(f"{server_url}/metrics").text
    assert scraped_sample(after, "agent_approvals_total", decision="reject") == (
        scraped_sample(before, "agent_approvals_total", decision="reject") + 1
    )
    assert scraped_sample(after, "agent_invocations_by_status_total", status="interrupted") == (
        scraped_sample(before, "agent_invocations_by_status_total", status="interrupted") + 1
    )


def test_an_empty_approval_list_turns_approvals_off(settings, llm_server, canary, user):
    from agents.runner import agent_run

    settings.AGENT_APPROVAL_REQUIRED_TOOLS = []
    settings.HTTP_TOOL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    llm_server.enqueue(
        Reply.text("1. Post."),
        Reply.tool_calls([post_call(canary, {"order": 3})]),
        Reply.text("Posted."),
    )
    run = agent_run(user=user, message="post it")
    assert run.status == "success"
    assert [json.loads(r["body"]) for r in canary.received] == [{"order": 3}]

    settings.AGENT_APPROVAL_REQUIRED_TOOLS = ["http_post"]
    llm_server.enqueue(Reply.text("1. Post."), Reply.tool_calls([post_call(canary, {"order": 4})]))
    assert agent_run(user=user, message="again").status == "interrupted"
    assert len(canary.received) == 1


def test_a_new_message_on_a_thread_whose_approval_expired_runs(api, llm, canary):
    body = interrupted_run(api, llm, canary)
    AgentRun.objects.filter(pk=body["run_id"]).update(
        finished_at=timezone.now() - timedelta(hours=2)
    )
    llm.enqueue(Reply.text("1. Answer."), Reply.text("Fresh."))
    nxt = api.post(RUN, json={"message": "anything new?", "thread_id": body["thread_id"]})
    assert nxt.status_code == HTTPStatus.OK, nxt.text  # not 409 thread_interrupted
    assert AgentRun.objects.get(pk=body["run_id"]).decision == "expired"
    assert canary.received == []
