"""The run lifecycle (``agents.runner``) called directly, with the offline model and the real
checkpointer.

LangGraph runs the tools on worker threads, which do not see a test's uncommitted transaction:
tests whose tools read rows the test created use ``transaction=True``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from accounts.models import User
from accounts.tests.factories import UserFactory
from agents import cancellation, selectors
from agents.checkpointer import get_checkpointer
from agents.errors import AgentRunError, LLMUnavailable, RunCancelled, ThreadNotFound
from agents.events import (
    AgentEvent,
    DoneEvent,
    PlanEvent,
    RunEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.models import AgentRun, AgentThread
from agents.runner import agent_run, agent_run_execute, agent_run_start
from testing.llm_server import FakeLLMServer, Reply

pytestmark = pytest.mark.usefixtures("offline")

USERS_QUESTION = "What users are in the system?"


def assert_every_tool_call_answered(thread_id: str) -> None:
    thread = AgentThread.objects.get(pk=thread_id)
    messages = selectors.thread_messages(thread=thread)
    assert messages, "the thread has no memory"
    for index, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        following = messages[index + 1 : index + 1 + len(calls)]
        assert [m["role"] for m in following] == ["tool"] * len(calls), messages
        assert {m["tool_call_id"] for m in following} == {c["id"] for c in calls}


class SlowSaver(BaseCheckpointSaver):
    """The real checkpointer, with checkpoint writes as slow as a far-away database's."""

    def __init__(self, inner: BaseCheckpointSaver, delay: float) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner
        self.delay = delay

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
        return self.inner.list(config, **kwargs)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        time.sleep(self.delay)
        return self.inner.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.inner.get_next_version(current, channel)


def stream_run(user: User, message: str, **execute: Any) -> Iterator[AgentEvent]:
    return agent_run_execute(run=agent_run_start(user=user, message=message), **execute)


def collect(
    stream: Iterator[AgentEvent],
    seen: list[AgentEvent],
    *,
    cancel: threading.Event | None = None,
    cancel_after: str = "",
) -> None:
    """Every event of ``stream`` into ``seen``; set ``cancel`` once a ``cancel_after`` arrives."""
    for event in stream:
        seen.append(event)
        if cancel is not None and event.event == cancel_after:
            cancel.set()  # the client left


def events_until(stream: Any, name: str) -> list[AgentEvent]:
    seen = []
    for event in stream:
        seen.append(event)
        if event.event == name:
            return seen
    raise AssertionError(f"no {name!r} event in {[e.event for e in seen]}")


@pytest.mark.django_db(transaction=True)
def test_a_superuser_asking_for_the_users_gets_them_all() -> None:
    admin = UserFactory(email="root@example.com", is_superuser=True, is_staff=True)
    others = [UserFactory(email="ada@example.com"), UserFactory(email="grace@example.com")]

    run = agent_run(user=admin, message=USERS_QUESTION)

    assert run.status == AgentRun.Status.SUCCESS
    for person in [admin, *others]:
        assert str(person.email) in run.response
    assert "list_users" in run.plan
    stored = AgentRun.objects.get(pk=run.pk)
    assert stored.user == admin
    assert stored.status == AgentRun.Status.SUCCESS
    assert stored.response == run.response
    assert (stored.provider, stored.model) == ("offline", "offline")
    [call] = stored.tool_calls
    assert (call["name"], call["ok"]) == ("list_users", True)
    assert "grace@example.com" in call["output"]


@pytest.mark.django_db(transaction=True)
def test_one_compiled_graph_runs_each_caller_with_their_own_tools() -> None:
    """The graph is compiled once per process; each run's tools see only its own caller."""
    from agents import runner

    ada = UserFactory(email="ada@example.com")
    grace = UserFactory(email="grace@example.com")

    first = agent_run(user=ada, message=USERS_QUESTION)
    graph = runner._graph_for(model=None, checkpointer=None)
    second = agent_run(user=grace, message=USERS_QUESTION)

    assert runner._graph_for(model=None, checkpointer=None) is graph
    assert "ada@example.com" in first.tool_calls[0]["output"]
    assert "grace@example.com" not in first.tool_calls[0]["output"]
    assert "grace@example.com" in second.tool_calls[0]["output"]
    assert "ada@example.com" not in second.tool_calls[0]["output"]


def test_the_graphs_template_tools_answer_nobodys_data() -> None:
    """The tools the shared graph is compiled with belong to no caller: run, they fail closed."""
    from agents.directory import tool_templates
    from agents.graph.tools import read_tool_error

    tools = {tool.name: tool for tool in tool_templates(None)}

    output = tools["list_users"].invoke({"limit": 5})
    assert str(read_tool_error(output)) == "lookup failed: RuntimeError"


@pytest.mark.django_db
def test_a_thread_remembers_earlier_turns(user: User) -> None:
    first = agent_run(user=user, message="My favourite colour is teal.")
    second = agent_run(user=user, message="What did I tell you?", thread_id=first.thread_id)

    assert second.thread_id == first.thread_id
    assert 'Earlier in this conversation you said: "My favourite colour is teal."' in (
        second.response
    )
    # A new thread starts without that memory.
    fresh = agent_run(user=user, message="What did I tell you?")
    assert fresh.thread_id != first.thread_id
    assert "teal" not in fresh.response
    assert AgentRun.objects.filter(thread_id=first.thread_id).count() == 2


@pytest.mark.django_db
def test_another_users_thread_is_not_found_and_starts_nothing(user: User) -> None:
    theirs = agent_run(user=UserFactory(), message="my private conversation")

    with pytest.raises(ThreadNotFound):
        agent_run_start(user=user, message="let me in", thread_id=theirs.thread_id)
    assert not AgentRun.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_start_records_a_running_run_with_its_provider_and_model(user: User) -> None:
    run = agent_run_start(user=user, message="hello", metadata={"source": "test"})

    stored = AgentRun.objects.get(pk=run.pk)
    assert stored.status == AgentRun.Status.RUNNING
    assert (stored.provider, stored.model) == ("offline", "offline")
    assert (stored.input, stored.metadata) == ("hello", {"source": "test"})
    assert stored.thread.owner == user


@pytest.mark.django_db(transaction=True)
def test_execute_yields_the_run_lifecycle_in_order() -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    UserFactory(email="ada@example.com")

    events = list(stream_run(admin, USERS_QUESTION))

    assert [e.event for e in events] == ["run", "plan", "tool_call", "tool_result", "done"]
    run, plan, call, result, done = events
    assert isinstance(run, RunEvent)
    assert isinstance(plan, PlanEvent)
    assert isinstance(call, ToolCallEvent)
    assert isinstance(result, ToolResultEvent)
    assert isinstance(done, DoneEvent)
    assert run.run_id == str(done.run.id)
    assert run.thread_id == str(done.run.thread_id)
    assert run.trace_id is None  # tracing is off
    assert "list_users" in plan.plan
    assert (call.name, call.args) == ("list_users", {})
    assert (result.name, result.ok) == ("list_users", True)
    assert result.summary == f"{User.objects.count()} result(s)"
    assert done.run.status == AgentRun.Status.SUCCESS
    assert "ada@example.com" in done.run.response
    assert AgentRun.objects.get(pk=done.run.id).status == AgentRun.Status.SUCCESS


@pytest.mark.django_db
def test_execute_with_tokens_streams_the_final_answer(user: User) -> None:
    events = list(stream_run(user, "Tell me a story.", tokens=True))

    names = [e.event for e in events]
    assert names[:2] == ["run", "plan"]
    assert names[-1] == "done"
    tokens = [e.text for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) > 1
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert "".join(tokens) == done.run.response


@pytest.mark.django_db
def test_a_failed_run_is_finished_then_its_domain_error_raised(
    llm_server: FakeLLMServer, user: User
) -> None:
    llm_server.enqueue(Reply.error(500, "upstream broke"))
    run = agent_run_start(user=user, message="hello")
    events: list[AgentEvent] = []

    with pytest.raises(LLMUnavailable) as raised:
        collect(agent_run_execute(run=run), events)

    assert [e.event for e in events] == ["run"]  # no error inside the stream
    assert raised.value.extra == {
        "status": "error",
        "run_id": str(run.id),
        "thread_id": str(run.thread_id),
        "trace_id": None,
    }
    stored = AgentRun.objects.get(pk=run.pk)
    assert stored.status == AgentRun.Status.ERROR
    assert stored.error.startswith("llm_unavailable: ")
    assert stored.finished_at is not None
    assert stored.latency_ms is not None
    assert (stored.provider, stored.model) == ("openai", "gpt-test")


@pytest.mark.django_db
def test_agent_run_raises_the_domain_error_of_a_failed_run(
    llm_server: FakeLLMServer, user: User
) -> None:
    llm_server.enqueue(Reply.error(500, "upstream broke"))

    with pytest.raises(LLMUnavailable) as raised:
        agent_run(user=user, message="hello")

    stored = AgentRun.objects.get(pk=raised.value.extra["run_id"])
    assert stored.status == AgentRun.Status.ERROR
    assert str(stored.thread_id) == raised.value.extra["thread_id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop_after", ["run", "plan", "tool_call"])
def test_closing_the_stream_early_records_a_cancelled_run(stop_after: str) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    stream = stream_run(admin, USERS_QUESTION)
    seen = events_until(stream, stop_after)
    stream.close()

    started = seen[0]
    assert isinstance(started, RunEvent)
    run = AgentRun.objects.get(pk=started.run_id)
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert run.finished_at is not None
    assert run.latency_ms is not None
    if stop_after == "tool_call":
        assert [c["name"] for c in run.tool_calls] == ["list_users"]

    # The thread goes on: no tool call is left unanswered and the next turn succeeds.
    again = agent_run(user=admin, message="Hello again", thread_id=run.thread_id)
    assert again.status == AgentRun.Status.SUCCESS
    assert_every_tool_call_answered(started.thread_id)


@pytest.mark.django_db(transaction=True)
def test_closing_the_stream_after_a_tool_call_with_a_slow_checkpointer_keeps_the_thread_valid(
    user: User,
) -> None:
    """The same as above, made deterministic: checkpoint writes take 0.3 s, as they may on a
    busy or remote PostgreSQL. The repair must see the tool call the executor just made."""
    stream = stream_run(
        user, "What are my items?", checkpointer=SlowSaver(get_checkpointer(), delay=0.3)
    )
    seen = events_until(stream, "tool_call")
    stream.close()

    started = seen[0]
    assert isinstance(started, RunEvent)
    run = AgentRun.objects.get(pk=started.run_id)
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert_every_tool_call_answered(started.thread_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cancel_after", ["plan", "tool_call"])
def test_setting_the_cancel_event_stops_the_run(cancel_after: str) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    cancel = threading.Event()
    events: list[AgentEvent] = []
    with pytest.raises(RunCancelled) as raised:
        collect(
            stream_run(admin, USERS_QUESTION, cancel=cancel),
            events,
            cancel=cancel,
            cancel_after=cancel_after,
        )

    names = [e.event for e in events]
    expected = ["run", "plan", "tool_call"]
    assert names[: names.index(cancel_after) + 1] == expected[: names.index(cancel_after) + 1]
    assert "done" not in names
    started = events[0]
    assert isinstance(started, RunEvent)
    assert raised.value.code == "cancelled"
    assert raised.value.extra["run_id"] == started.run_id
    run = AgentRun.objects.get(pk=started.run_id)
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert run.response == ""
    again = agent_run(user=admin, message="Hello again", thread_id=run.thread_id)
    assert again.status == AgentRun.Status.SUCCESS
    assert_every_tool_call_answered(started.thread_id)


@pytest.mark.django_db
def test_the_checkpointer_matches_the_database(user: User) -> None:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    result = agent_run(user=user, message="Remember me.")
    saver = get_checkpointer()
    thread_id = str(result.thread_id)
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    assert saver.get_tuple(config) is not None

    if connection.vendor == "postgresql":
        assert isinstance(saver, PostgresSaver)
        # Memory lives in the very database Django uses.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", [thread_id])
            assert cursor.fetchone()[0] > 0
    else:
        assert connection.vendor == "sqlite"
        assert isinstance(saver, SqliteSaver)
        with sqlite3.connect(settings.AGENT_CHECKPOINT_SQLITE_PATH) as conn:
            count = conn.execute(
                "SELECT count(*) FROM checkpoints WHERE thread_id = ?", [thread_id]
            ).fetchone()[0]
        assert count > 0


@pytest.mark.django_db
def test_a_run_whose_model_cannot_be_built_is_finished_not_left_running(
    settings: Any, user: User
) -> None:
    run = agent_run_start(user=user, message="hello")
    # A worker with broken credentials: the model fails before the graph ever starts.
    settings.LLM_MODEL_PROVIDER = "azure"
    settings.AZURE_OPENAI_ENDPOINT = "https://azure.invalid"
    settings.AZURE_OPENAI_API_KEY = ""
    events: list[AgentEvent] = []

    with pytest.raises(AgentRunError) as raised:
        collect(agent_run_execute(run=run), events)

    assert events == []
    assert raised.value.code == "agent_error"
    assert raised.value.extra["run_id"] == str(run.id)
    stored = AgentRun.objects.get(pk=run.pk)
    assert stored.status == AgentRun.Status.ERROR
    assert stored.error.startswith("agent_error: ")
    assert stored.finished_at is not None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_run_holds_no_database_connection_while_it_waits_on_the_model(
    llm_server: FakeLLMServer,
) -> None:
    """With Django's connection pool, a run gives its connection back while the LLM answers,
    so that ten pooled connections serve more than ten runs in flight."""
    pool = connection.pool
    assert pool is not None, "the services run uses Django's connection pool"
    in_use: list[int] = []

    def reply(body: dict[str, Any]) -> Reply:
        stats = pool.get_stats()
        in_use.append(stats["pool_size"] - stats["pool_available"])
        return Reply.text("Hello.")

    llm_server.responder = reply
    run = agent_run(user=UserFactory(), message="Hello")

    assert run.status == AgentRun.Status.SUCCESS
    assert run.response == "Hello."
    assert len(in_use) == 2  # planner, executor
    assert in_use == [0, 0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop", ["disconnect", "rollback"])
def test_a_stopped_run_hands_its_thread_on_once_its_memory_is_whole(
    stop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread's next run (queued behind this one) may start the moment it is handed the
    thread, in another process: by then the stopped run's open tool calls are answered, or its
    turn rolled back. Else the next run reads (and writes back) the memory as it was."""
    admin = UserFactory(is_superuser=True, is_staff=True)
    earlier = agent_run(user=admin, message="Hello")
    memory_at_hand_on: list[list[dict[str, Any]]] = []

    def hand_on(*, thread_id: Any) -> None:
        thread = AgentThread.objects.get(pk=thread_id)
        memory_at_hand_on.append(selectors.thread_messages(thread=thread))

    monkeypatch.setattr("agents.control.run_dispatch_next", hand_on)
    run = agent_run_start(user=admin, message=USERS_QUESTION, thread_id=earlier.thread_id)
    stream = agent_run_execute(run=run)
    events_until(stream, "tool_call")
    if stop == "disconnect":
        stream.close()  # the client left: the tool call the executor made is never run
    else:
        cancellation.stop_here(str(run.id), "rollback")  # a newer run's strategy
        with pytest.raises(RunCancelled):
            list(stream)

    [memory] = memory_at_hand_on
    said = [m["content"] for m in memory if m["role"] == "user"]
    if stop == "rollback":
        assert said == ["Hello"]
    else:
        assert said == ["Hello", USERS_QUESTION]
        calls = [c["id"] for m in memory for c in m.get("tool_calls") or []]
        assert calls
        assert {m.get("tool_call_id") for m in memory if m["role"] == "tool"} == set(calls)
