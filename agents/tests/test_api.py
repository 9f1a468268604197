"""The agent API as a client sees it: JWT, JSON in and out, a real OpenAI-compatible server.

``llm_server`` is a real HTTP server speaking the OpenAI chat completions protocol; the agent
reaches it through ``ChatOpenAI``. Its answers are scripted in request order: the planner's call
(no tools), then the executor's calls (with tools). ``server.requests`` holds what the agent sent,
which is how these tests see what the LLM saw (tool results, memory, unanswered tool calls).

Tests whose tools must read rows the test created use ``transaction=True``: LangGraph runs the
tools on worker threads, which do not see a test's uncommitted transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import ItemFactory, UserFactory
from agents.checkpointer import get_checkpointer
from agents.models import AgentRun, AgentThread
from agents.serializers import RunResultSerializer
from testing.llm_server import FakeLLMServer, Reply

RUN = "/api/v1/agent/run"
RUNS = "/api/v1/agent/runs"
THREADS = "/api/v1/agent/threads"

SEED_KEYS = {"response", "thread_id", "trace_id", "run_id", "latency_ms", "status", "plan"}
ERROR_KEYS = {"status", "run_id", "thread_id", "trace_id", "detail", "code"}

pytestmark = pytest.mark.usefixtures("offline")


# --------------------------------------------------------------------------------------------
# Helpers


def post_run(client: APIClient, message: Any, **extra: Any) -> Any:
    return client.post(RUN, {"message": message, **extra}, format="json")


def executor_requests(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r.get("tools")]


def planner_requests(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if not r.get("tools")]


def tool_results(request: dict[str, Any]) -> dict[str, Any]:
    """The tool messages of one LLM request, parsed, by tool_call_id."""
    return {
        m["tool_call_id"]: json.loads(m["content"])
        for m in request["messages"]
        if m["role"] == "tool"
    }


def tool_call_ids(request: dict[str, Any]) -> list[str]:
    return [
        call["id"]
        for m in request["messages"]
        if m["role"] == "assistant"
        for call in m.get("tool_calls") or []
    ]


def assert_every_tool_call_answered(messages: list[dict[str, Any]]) -> None:
    """What OpenAI enforces: an assistant's tool calls are each answered by the tool messages
    that follow it, before anything else."""
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") or [] if message["role"] == "assistant" else []
        if not calls:
            continue
        following = messages[index + 1 : index + 1 + len(calls)]
        assert [m["role"] for m in following] == ["tool"] * len(calls), messages
        assert {m["tool_call_id"] for m in following} == {c["id"] for c in calls}


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def assistant_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "assistant"]


def make_run(
    user: User,
    *,
    thread: AgentThread | None = None,
    status: str = AgentRun.Status.SUCCESS,
    created_at: datetime | None = None,
    message: str = "hello",
) -> AgentRun:
    thread = thread or AgentThread.objects.create(owner=user, title=message)
    run = AgentRun.objects.create(
        user=user, thread=thread, input=message, status=status, response="hi", latency_ms=5
    )
    if created_at is not None:
        AgentRun.objects.filter(pk=run.pk).update(created_at=created_at)
        run.refresh_from_db()
    return run


def ids(response: Any) -> list[str]:
    return [r["id"] for r in response.json()["results"]]


def follow(client: APIClient, url: str) -> list[str]:
    """Every run id of a cursor-paginated list, following ``next`` to the end."""
    seen: list[str] = []
    next_url: str | None = url
    pages = 0
    while next_url:
        response = client.get(next_url)
        assert response.status_code == HTTPStatus.OK, response.content
        seen += ids(response)
        parts = urlsplit(response.json()["next"] or "")
        next_url = f"{parts.path}?{parts.query}" if parts.path else None
        pages += 1
        assert pages < 50
    return seen


# --------------------------------------------------------------------------------------------
# POST /agent/run


@pytest.mark.django_db(transaction=True)
def test_run_answers_with_the_seed_body_and_stores_the_run(
    user: User, client_for: Callable[[User], APIClient]
) -> None:
    other = UserFactory(email="someone-else@example.com")
    response = post_run(client_for(user), "What users are in the system?")

    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert set(body) == SEED_KEYS | {"provider", "model", "usage", "trace_url", "interrupt"}
    assert body["interrupt"] is None
    assert body["status"] == "success"
    assert body["trace_id"] is None
    assert body["provider"] == "offline"
    assert body["model"] == "offline"
    # The offline model lists what list_users returned: a normal user sees only themself.
    assert user.email in body["response"]
    assert other.email not in body["response"]
    assert "list_users" in body["plan"]
    assert isinstance(body["latency_ms"], int)
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert body["usage"]["total_tokens"] > 0

    run = AgentRun.objects.get(pk=body["run_id"])
    assert str(run.thread_id) == body["thread_id"]
    assert run.thread.owner == user
    assert run.user == user
    assert run.status == AgentRun.Status.SUCCESS
    assert run.error == ""
    assert run.input == "What users are in the system?"
    assert run.response == body["response"]
    assert run.plan == body["plan"]
    assert (run.provider, run.model) == ("offline", "offline")
    assert run.latency_ms == body["latency_ms"]
    assert run.finished_at is not None
    assert run.total_tokens == body["usage"]["total_tokens"]
    assert [(c["name"], c["ok"]) for c in run.tool_calls] == [("list_users", True)]
    assert body == json.loads(json.dumps(RunResultSerializer(run).data))


@pytest.mark.django_db(transaction=True)
def test_tool_call_result_goes_back_to_the_llm_without_secrets(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    llm_server.enqueue(
        Reply.text("1. Look the user up with lookup_user_by_email."),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})]),
        Reply.text("You are the user you asked about."),
    )
    response = post_run(client_for(user), f"Who is {user.email}?", metadata={"source": "test"})

    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["response"] == "You are the user you asked about."
    assert body["plan"] == "1. Look the user up with lookup_user_by_email."
    assert (body["provider"], body["model"]) == ("openai", "gpt-test")

    planner, first, second = llm_server.requests
    assert "tools" not in planner
    assert {t["function"]["name"] for t in first["tools"]} >= {"lookup_user_by_email"}
    assert first["messages"][-1] == {"role": "user", "content": f"Who is {user.email}?"}
    assert "lookup_user_by_email" in first["messages"][0]["content"]  # the plan is in the prompt
    # The tool result the LLM got: the user, and nothing a person would not show.
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {
        "user": {
            "id": str(user.id),
            "email": user.email,
            "full_name": user.full_name,
            "is_active": True,
            "is_superuser": False,
        }
    }
    assert "password" not in tool_message["content"]
    assert user.password not in tool_message["content"]

    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.metadata == {"source": "test"}
    [call] = run.tool_calls
    assert call["name"] == "lookup_user_by_email"
    assert call["args"] == {"email": user.email}
    assert call["ok"] is True
    assert isinstance(call["duration_ms"], int | float)
    assert call["duration_ms"] >= 0
    assert user.email in call["output"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caller", ["user", "superuser"])
def test_tools_see_only_what_the_caller_may_see(
    llm_server: FakeLLMServer, caller: str, client_for: Callable[[User], APIClient]
) -> None:
    asker = UserFactory(is_superuser=caller == "superuser", is_staff=caller == "superuser")
    other = UserFactory(email="private@example.com")
    item = ItemFactory(owner=other, title="Secret plans")
    llm_server.enqueue(
        Reply.text("1. Look things up."),
        Reply.tool_calls(
            [
                ("lookup_user_by_email", {"email": other.email}),
                ("lookup_item_by_id", {"item_id": str(item.id)}),
                ("lookup_user_items", {"user_id": str(other.id)}),
            ]
        ),
        Reply.text("Done."),
    )
    response = post_run(client_for(asker), "Tell me about private@example.com and their items")
    assert response.status_code == HTTPStatus.OK, response.content

    results = list(tool_results(llm_server.requests[-1]).values())
    if caller == "superuser":
        assert results[0]["user"]["email"] == other.email
        assert results[1]["item"]["title"] == "Secret plans"
        assert results[2]["count"] == 1
        assert results[2]["items"][0]["id"] == str(item.id)
    else:
        # Out of scope answers exactly like something that does not exist.
        assert [r.get("code") for r in results] == ["not_found"] * 3
        assert "Secret plans" not in json.dumps(results)
        assert str(other.email) in results[0]["error"]
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    expected_ok = caller == "superuser"
    assert [c["ok"] for c in run.tool_calls] == [expected_ok] * 3


@pytest.mark.django_db(transaction=True)
def test_token_counts_are_the_sum_of_what_the_llm_reported(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    llm_server.enqueue(
        Reply.text("1. Look it up.", prompt_tokens=11, completion_tokens=7),
        Reply.tool_calls([("lookup_user_items", {})], prompt_tokens=101, completion_tokens=13),
        Reply.text("You have no items.", prompt_tokens=1003, completion_tokens=29),
    )
    response = post_run(client_for(user), "What are my items?")

    assert response.status_code == HTTPStatus.OK, response.content
    usage = {"prompt_tokens": 1115, "completion_tokens": 49, "total_tokens": 1164}
    assert response.json()["usage"] == usage
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (1115, 49, 1164)
    detail = client_for(user).get(f"{RUNS}/{run.id}").json()
    assert (detail["prompt_tokens"], detail["completion_tokens"], detail["total_tokens"]) == (
        1115,
        49,
        1164,
    )


@pytest.mark.django_db(transaction=True)
def test_second_turn_on_a_thread_remembers_the_first(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    client = client_for(user)
    llm_server.enqueue(
        Reply.text("1. Look up the user."),
        Reply.tool_calls([("lookup_user_by_email", {"email": user.email})]),
        Reply.text("Your name is on file."),
    )
    first = post_run(client, f"Is {user.email} registered?")
    assert first.status_code == HTTPStatus.OK, first.content
    thread_id = first.json()["thread_id"]

    llm_server.reset()
    llm_server.enqueue(Reply.text("1. Answer from memory."), Reply.text("You asked about you."))
    second = post_run(client, "What did I just ask?", thread_id=thread_id)

    assert second.status_code == HTTPStatus.OK, second.content
    assert second.json()["thread_id"] == thread_id
    assert second.json()["run_id"] != first.json()["run_id"]
    planner, executor = llm_server.requests
    for request in (planner, executor):
        assert user_texts(request) == [f"Is {user.email} registered?", "What did I just ask?"]
        assert "Your name is on file." in assistant_texts(request)
    # The executor also sees the first turn's tool traffic, every call answered.
    assert_every_tool_call_answered(executor["messages"])
    assert len(tool_call_ids(executor)) == 1
    # The planner gets the conversation without tool traffic.
    assert not [m for m in planner["messages"] if m["role"] == "tool"]

    detail = client.get(f"{THREADS}/{thread_id}")
    assert detail.status_code == HTTPStatus.OK, detail.content
    messages = detail.json()["messages"]
    assert [m["role"] for m in messages] == [
        "user", "assistant", "tool", "assistant", "user", "assistant",
    ]  # fmt: skip
    assert messages[0]["content"] == f"Is {user.email} registered?"
    assert messages[1]["tool_calls"][0]["name"] == "lookup_user_by_email"
    assert messages[1]["tool_calls"][0]["args"] == {"email": user.email}
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert messages[2]["name"] == "lookup_user_by_email"
    assert user.email in messages[2]["content"]
    assert messages[3]["content"] == "Your name is on file."
    assert messages[5]["content"] == "You asked about you."
    assert AgentRun.objects.filter(thread_id=thread_id).count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("script", "status_code"),
    [
        pytest.param([Reply.error(500, "boom")], 500, id="planner-500"),
        pytest.param(
            [
                Reply.text("1. Look it up."),
                Reply.tool_calls([("lookup_user_items", {})]),
                Reply.error(503, "overloaded"),
            ],
            503,
            id="executor-503-after-a-tool-ran",
        ),
    ],
)
def test_llm_server_error_is_a_502_and_the_thread_still_works(
    llm_server: FakeLLMServer,
    user: User,
    client_for: Callable[[User], APIClient],
    script: list[Reply],
    status_code: int,
) -> None:
    client = client_for(user)
    llm_server.enqueue(*script)
    response = post_run(client, "What are my items?")

    assert response.status_code == HTTPStatus.BAD_GATEWAY, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == "error"
    assert body["code"] == "llm_unavailable"
    assert body["detail"]
    run = AgentRun.objects.get(pk=body["run_id"])
    assert str(run.thread_id) == body["thread_id"]
    assert run.status == AgentRun.Status.ERROR
    assert "llm_unavailable" in run.error
    assert str(status_code) in run.error  # what the provider answered, for whoever debugs it
    assert run.finished_at is not None
    assert run.latency_ms is not None

    llm_server.reset()
    llm_server.enqueue(Reply.text("1. Answer."), Reply.text("Here I am again."))
    again = post_run(client, "Are you back?", thread_id=body["thread_id"])
    assert again.status_code == HTTPStatus.OK, again.content
    assert again.json()["response"] == "Here I am again."
    assert again.json()["thread_id"] == body["thread_id"]
    assert_every_tool_call_answered(executor_requests(llm_server)[0]["messages"])


@pytest.mark.django_db
def test_llm_timeout_is_a_504_and_the_thread_still_works(
    llm_server: FakeLLMServer, user_client: APIClient
) -> None:
    llm_server.enqueue(Reply.text("1. Answer."), Reply.hang(5))
    response = post_run(user_client, "Hello?")

    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert (body["status"], body["code"]) == ("error", "llm_timeout")
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert "llm_timeout" in run.error
    assert run.plan == "1. Answer."

    llm_server.enqueue(Reply.text("1. Answer."), Reply.text("Sorry for the wait."))
    again = post_run(user_client, "Hello again?", thread_id=body["thread_id"])
    assert again.status_code == HTTPStatus.OK, again.content
    assert again.json()["response"] == "Sorry for the wait."


@pytest.mark.django_db
def test_bad_tool_arguments_and_unknown_tools_become_error_results(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    client = client_for(user)
    llm_server.enqueue(
        Reply.text("1. Look the item up."),
        Reply.tool_calls(
            [
                ("lookup_item_by_id", {"item_id": "not-a-uuid"}),
                ("delete_everything", {"really": True}),
            ]
        ),
        Reply.text("I could not find that item."),
    )
    response = post_run(client, "Show item not-a-uuid")

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["response"] == "I could not find that item."
    bad_args, unknown = tool_results(llm_server.requests[-1]).values()
    assert bad_args["code"] == "invalid_arguments"
    assert "item_id" in bad_args["error"]
    assert unknown["code"] == "unknown_tool"
    assert "delete_everything" in unknown["error"]
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    assert [(c["name"], c["ok"]) for c in run.tool_calls] == [
        ("lookup_item_by_id", False),
        ("delete_everything", False),
    ]

    llm_server.reset()
    llm_server.enqueue(Reply.text("1. Answer."), Reply.text("Anything else?"))
    again = post_run(client, "Never mind.", thread_id=response.json()["thread_id"])
    assert again.status_code == HTTPStatus.OK, again.content
    [executor] = executor_requests(llm_server)
    assert len(tool_call_ids(executor)) == 2
    assert_every_tool_call_answered(executor["messages"])


@pytest.mark.django_db(transaction=True)
def test_step_limit_is_a_422_and_leaves_no_unanswered_tool_calls(
    llm_server: FakeLLMServer, settings: Any, user: User, client_for: Callable[[User], APIClient]
) -> None:
    settings.AGENT_MAX_STEPS = 2
    client = client_for(user)
    llm_server.enqueue(Reply.text("1. Keep looking."))
    llm_server.default_reply = Reply.tool_calls([("lookup_user_items", {})])
    response = post_run(client, "What are my items?")

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert (body["status"], body["code"]) == ("error", "step_limit_exceeded")
    assert len(executor_requests(llm_server)) == 2  # the limit, not one call more
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert "step_limit_exceeded" in run.error
    assert [c["name"] for c in run.tool_calls] == ["lookup_user_items"] * 2
    assert [c["ok"] for c in run.tool_calls] == [True, False]  # the last one never ran

    llm_server.default_reply = None
    llm_server.reset()
    llm_server.enqueue(Reply.text("1. Answer."), Reply.text("Let's start over."))
    again = post_run(client, "Stop looking.", thread_id=body["thread_id"])
    assert again.status_code == HTTPStatus.OK, again.content
    [executor] = executor_requests(llm_server)
    assert len(tool_call_ids(executor)) == 2
    assert_every_tool_call_answered(executor["messages"])


# --------------------------------------------------------------------------------------------
# Validation and ownership


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"message": ""}, "message", id="empty"),
        pytest.param({"message": "   \n\t "}, "message", id="whitespace-only"),
        pytest.param({"message": "x" * 11}, "message", id="too-long"),
        pytest.param({"message": ["hello"]}, "message", id="message-list"),
        pytest.param({"message": {"text": "hello"}}, "message", id="message-object"),
        pytest.param({"message": None}, "message", id="message-null"),
        pytest.param({"message": True}, "message", id="message-bool"),
        pytest.param({"message": 42}, "message", id="message-number"),
        pytest.param({}, "message", id="message-missing"),
        pytest.param({"message": "hi", "thread_id": "not-a-uuid"}, "thread_id", id="thread-id"),
        pytest.param({"message": "hi", "metadata": ["a", "b"]}, "metadata", id="metadata-list"),
        pytest.param({"message": "hi", "metadata": "text"}, "metadata", id="metadata-string"),
    ],
)
def test_invalid_run_input_is_a_400_per_field_and_creates_nothing(
    settings: Any, user_client: APIClient, payload: dict[str, Any], field: str
) -> None:
    settings.AGENT_MAX_MESSAGE_CHARS = 10
    response = user_client.post(RUN, payload, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    assert all(isinstance(m, str) and m for m in body["errors"][field])
    assert not AgentRun.objects.exists()
    assert not AgentThread.objects.exists()


@pytest.mark.django_db
def test_message_length_limit_is_inclusive(settings: Any, user_client: APIClient) -> None:
    settings.AGENT_MAX_MESSAGE_CHARS = 10
    response = post_run(user_client, "x" * 10)
    assert response.status_code == HTTPStatus.OK, response.content
    too_long = post_run(user_client, "x" * 11)
    assert too_long.status_code == HTTPStatus.BAD_REQUEST
    assert "10" in too_long.json()["errors"]["message"][0]


@pytest.mark.django_db
def test_metadata_over_its_size_limit_is_a_400(settings: Any, user_client: APIClient) -> None:
    settings.AGENT_MAX_METADATA_BYTES = 50
    response = post_run(user_client, "hi", metadata={"note": "y" * 100})
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert list(response.json()["errors"]) == ["metadata"]
    assert not AgentRun.objects.exists()


@pytest.mark.django_db
def test_another_users_thread_is_not_found_and_no_run_is_created(
    user_client: APIClient,
) -> None:
    other: User = UserFactory()
    thread = AgentThread.objects.create(owner=other, title="Theirs")
    response = post_run(user_client, "Let me in", thread_id=str(thread.id))

    assert response.status_code == HTTPStatus.NOT_FOUND, response.content
    assert response.json()["code"] == "not_found"
    assert not AgentRun.objects.exists()
    thread.refresh_from_db()
    assert (thread.owner, thread.title) == (other, "Theirs")


@pytest.mark.django_db
def test_an_unknown_thread_id_starts_a_thread_with_that_id(
    user: User, user_client: APIClient
) -> None:
    thread_id = uuid.uuid4()
    response = post_run(user_client, "Hello, new thread", thread_id=str(thread_id))

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["thread_id"] == str(thread_id)
    thread = AgentThread.objects.get(pk=thread_id)
    assert thread.owner == user
    assert thread.title == "Hello, new thread"
    listed = user_client.get(THREADS).json()["results"]
    assert [t["id"] for t in listed] == [str(thread_id)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", RUN),
        ("get", RUNS),
        ("get", f"{RUNS}/{uuid.uuid4()}"),
        ("get", THREADS),
        ("get", f"{THREADS}/{uuid.uuid4()}"),
        ("delete", f"{THREADS}/{uuid.uuid4()}"),
    ],
)
def test_anonymous_callers_get_401(api_client: APIClient, method: str, path: str) -> None:
    response = getattr(api_client, method)(path, {"message": "hi"}, format="json")
    assert response.status_code == HTTPStatus.UNAUTHORIZED, response.content
    assert response.json()["code"]
    assert not AgentRun.objects.exists()


# --------------------------------------------------------------------------------------------
# GET /agent/runs


@pytest.mark.django_db
def test_run_list_shows_only_the_callers_runs_newest_first(
    user: User, user_client: APIClient
) -> None:
    now = timezone.now()
    mine = [make_run(user, created_at=now - timedelta(minutes=m)) for m in (3, 1, 2)]
    make_run(UserFactory(), created_at=now)

    response = user_client.get(RUNS)

    assert response.status_code == HTTPStatus.OK, response.content
    newest_first = sorted(mine, key=lambda r: r.created_at, reverse=True)
    assert ids(response) == [str(r.id) for r in newest_first]
    first = response.json()["results"][0]
    assert first["user_id"] == str(user.id)
    assert first["input"] == "hello"
    assert "tool_calls" not in first  # the list is light; the detail has them


@pytest.mark.django_db
def test_run_list_cursor_pagination_follows_next_to_the_end(
    user: User, user_client: APIClient
) -> None:
    now = timezone.now()
    runs = [make_run(user, created_at=now - timedelta(seconds=s)) for s in range(5)]

    first_page = user_client.get(RUNS, {"limit": 2})
    assert len(first_page.json()["results"]) == 2
    assert first_page.json()["previous"] is None
    assert follow(user_client, f"{RUNS}?limit=2") == [str(r.id) for r in runs]


@pytest.mark.django_db
def test_run_list_page_size_is_capped_at_100(user: User, user_client: APIClient) -> None:
    thread = AgentThread.objects.create(owner=user, title="many")
    start = timezone.now()
    runs = AgentRun.objects.bulk_create(
        AgentRun(user=user, thread=thread, input=f"run {n}", status="success") for n in range(103)
    )
    for n, run in enumerate(runs):
        run.created_at = start - timedelta(seconds=n)
    AgentRun.objects.bulk_update(runs, ["created_at"])

    response = user_client.get(RUNS, {"limit": 1000})

    assert response.status_code == HTTPStatus.OK
    assert ids(response) == [str(r.id) for r in runs[:100]]
    assert response.json()["next"]
    assert follow(user_client, f"{RUNS}?limit=1000") == [str(r.id) for r in runs]


@pytest.mark.django_db
def test_run_list_filters(user: User, user_client: APIClient) -> None:
    now = timezone.now()
    thread = AgentThread.objects.create(owner=user, title="this one")
    old = make_run(user, thread=thread, created_at=now - timedelta(days=2))
    failed = make_run(user, status="error", created_at=now - timedelta(days=1))
    recent = make_run(user, thread=thread, created_at=now - timedelta(hours=1))

    def listed(**params: str) -> list[str]:
        response = user_client.get(RUNS, params)
        assert response.status_code == HTTPStatus.OK, response.content
        return ids(response)

    assert listed(thread_id=str(thread.id)) == [str(recent.id), str(old.id)]
    assert listed(status="error") == [str(failed.id)]
    assert listed(status="success") == [str(recent.id), str(old.id)]
    boundary = (now - timedelta(days=1, hours=1)).isoformat()
    assert listed(created_after=boundary) == [str(recent.id), str(failed.id)]
    assert listed(created_before=boundary) == [str(old.id)]
    assert listed(
        created_after=(now - timedelta(days=3)).isoformat(),
        created_before=(now - timedelta(hours=2)).isoformat(),
        status="success",
    ) == [str(old.id)]
    assert listed(thread_id=str(uuid.uuid4())) == []


@pytest.mark.django_db
def test_run_list_user_filter_is_for_superusers_only(
    user: User, superuser: User, client_for: Callable[[User], APIClient]
) -> None:
    theirs = make_run(user)
    admins = make_run(superuser)

    as_admin = client_for(superuser)
    assert ids(as_admin.get(RUNS, {"user": str(user.id)})) == [str(theirs.id)]
    assert ids(as_admin.get(RUNS)) == [str(admins.id)]  # without the filter: their own

    as_user = client_for(user)
    assert ids(as_user.get(RUNS, {"user": str(superuser.id)})) == [str(theirs.id)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "finished"}, "status"),
        ({"thread_id": "nope"}, "thread_id"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
        ({"user": "someone"}, "user"),
    ],
)
def test_run_list_bad_filter_values_are_a_400(
    user: User, user_client: APIClient, params: dict[str, str], field: str
) -> None:
    make_run(user)
    response = user_client.get(RUNS, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == [field]


# --------------------------------------------------------------------------------------------
# GET /agent/runs/{id}


@pytest.mark.django_db(transaction=True)
def test_run_detail_has_the_tool_calls_plan_and_tokens(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    client = client_for(user)
    llm_server.enqueue(
        Reply.text("1. List my items."),
        Reply.tool_calls([("lookup_user_items", {"limit": 5})]),
        Reply.text("You have no items yet."),
    )
    run_id = post_run(client, "What are my items?").json()["run_id"]

    response = client.get(f"{RUNS}/{run_id}")

    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["id"] == run_id
    assert body["status"] == "success"
    assert body["input"] == "What are my items?"
    assert body["response"] == "You have no items yet."
    assert body["plan"] == "1. List my items."
    assert (body["prompt_tokens"], body["completion_tokens"], body["total_tokens"]) == (
        33,
        21,
        54,
    )
    [call] = body["tool_calls"]
    assert call["name"] == "lookup_user_items"
    assert call["args"] == {"limit": 5}
    assert call["ok"] is True
    assert json.loads(call["output"])["count"] == 0


@pytest.mark.django_db
def test_run_detail_of_another_users_run_is_not_found(
    user: User, superuser: User, client_for: Callable[[User], APIClient]
) -> None:
    theirs = make_run(UserFactory())
    response = client_for(user).get(f"{RUNS}/{theirs.id}")
    assert response.status_code == HTTPStatus.NOT_FOUND, response.content
    assert response.json()["code"] == "not_found"
    assert client_for(user).get(f"{RUNS}/{uuid.uuid4()}").status_code == HTTPStatus.NOT_FOUND
    # A superuser reviews any run.
    assert client_for(superuser).get(f"{RUNS}/{theirs.id}").status_code == HTTPStatus.OK


# --------------------------------------------------------------------------------------------
# /agent/threads


@pytest.mark.django_db
def test_thread_list_shows_latest_activity_first(user: User, user_client: APIClient) -> None:
    now = timezone.now()
    threads = [AgentThread.objects.create(owner=user, title=f"t{n}") for n in range(3)]
    for age, thread in enumerate(threads):
        AgentThread.objects.filter(pk=thread.pk).update(updated_at=now - timedelta(hours=age + 1))
    stranger: User = UserFactory()
    AgentThread.objects.create(owner=stranger, title="not mine")

    listed = user_client.get(THREADS).json()["results"]
    assert [t["title"] for t in listed] == ["t0", "t1", "t2"]

    # A new message on the oldest thread makes it the latest.
    ping = post_run(user_client, "ping", thread_id=str(threads[2].id))
    assert ping.status_code == HTTPStatus.OK, ping.content
    listed = user_client.get(THREADS).json()["results"]
    assert [t["title"] for t in listed] == ["t2", "t0", "t1"]
    assert set(listed[0]) == {"id", "title", "created_at", "updated_at"}


@pytest.mark.django_db
def test_deleting_a_thread_removes_its_runs_and_its_memory(
    llm_server: FakeLLMServer, user: User, client_for: Callable[[User], APIClient]
) -> None:
    client = client_for(user)
    llm_server.enqueue(Reply.text("1. Remember."), Reply.text("I'll remember 42."))
    first = post_run(client, "Remember the number 42.")
    assert first.status_code == HTTPStatus.OK, first.content
    thread_id = first.json()["thread_id"]
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    assert get_checkpointer().get_tuple(config) is not None

    response = client.delete(f"{THREADS}/{thread_id}")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert not AgentThread.objects.filter(pk=thread_id).exists()
    assert not AgentRun.objects.filter(thread_id=thread_id).exists()
    assert not AgentRun.objects.filter(pk=first.json()["run_id"]).exists()
    assert get_checkpointer().get_tuple(config) is None
    assert client.get(f"{THREADS}/{thread_id}").status_code == HTTPStatus.NOT_FOUND
    assert client.get(f"{RUNS}/{first.json()['run_id']}").status_code == HTTPStatus.NOT_FOUND

    # The same id again starts from nothing: the LLM sees only the new message.
    llm_server.reset()
    llm_server.enqueue(Reply.text("1. Answer."), Reply.text("What number?"))
    again = post_run(client, "Which number did I say?", thread_id=thread_id)
    assert again.status_code == HTTPStatus.OK, again.content
    assert again.json()["thread_id"] == thread_id
    for request in llm_server.requests:
        assert [m["role"] for m in request["messages"]] == ["system", "user"]
        assert user_texts(request) == ["Which number did I say?"]


@pytest.mark.django_db
def test_another_users_thread_cannot_be_read_or_deleted(
    user_client: APIClient, client_for: Callable[[User], APIClient]
) -> None:
    owner = UserFactory()
    created = post_run(client_for(owner), "my private conversation")
    thread_id = created.json()["thread_id"]

    assert user_client.get(f"{THREADS}/{thread_id}").status_code == HTTPStatus.NOT_FOUND
    deleted = user_client.delete(f"{THREADS}/{thread_id}")
    assert deleted.status_code == HTTPStatus.NOT_FOUND
    assert deleted.json()["code"] == "not_found"
    assert AgentThread.objects.filter(pk=thread_id).exists()
    assert AgentRun.objects.filter(thread_id=thread_id).count() == 1
    detail = client_for(owner).get(f"{THREADS}/{thread_id}").json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
