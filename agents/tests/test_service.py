"""``AgentService`` called directly, with the offline model and the real checkpointer.

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
from agents import selectors
from agents.checkpointer import get_checkpointer
from agents.errors import RunCancelled
from agents.models import AgentRun, AgentThread
from agents.service import AgentEvent, AgentService

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

    result = AgentService().run_agent(admin, USERS_QUESTION)

    assert result["status"] == "success"
    for person in [admin, *others]:
        assert person.email in result["response"]
    assert "list_users" in result["plan"]
    run = AgentRun.objects.get(pk=result["run_id"])
    assert run.user == admin
    assert run.status == AgentRun.Status.SUCCESS
    [call] = run.tool_calls
    assert (call["name"], call["ok"]) == ("list_users", True)
    assert "grace@example.com" in call["output"]


@pytest.mark.django_db
def test_a_thread_remembers_earlier_turns(user: User) -> None:
    service = AgentService()
    first = service.run_agent(user, "My favourite colour is teal.")
    second = service.run_agent(user, "What did I tell you?", thread_id=first["thread_id"])

    assert second["thread_id"] == first["thread_id"]
    assert (
        'Earlier in this conversation you said: "My favourite colour is teal."'
        in (second["response"])
    )
    # A new thread starts without that memory.
    fresh = service.run_agent(user, "What did I tell you?")
    assert fresh["thread_id"] != first["thread_id"]
    assert "teal" not in fresh["response"]
    assert AgentRun.objects.filter(thread_id=first["thread_id"]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_stream_run_yields_the_run_lifecycle_in_order() -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    UserFactory(email="ada@example.com")

    events = list(AgentService().stream_run(admin, USERS_QUESTION))

    assert [e.event for e in events] == ["run", "plan", "tool_call", "tool_result", "done"]
    run, plan, call, result, done = events
    assert run.data["run_id"] == done.data["run_id"]
    assert run.data["thread_id"] == done.data["thread_id"]
    assert "list_users" in plan.data["plan"]
    assert call.data == {"name": "list_users", "args": {}}
    assert result.data["name"] == "list_users"
    assert result.data["ok"] is True
    assert result.data["summary"] == f"{User.objects.count()} result(s)"
    assert done.data["status"] == "success"
    assert "ada@example.com" in done.data["response"]
    assert AgentRun.objects.get(pk=done.data["run_id"]).status == AgentRun.Status.SUCCESS


@pytest.mark.django_db
def test_stream_run_with_tokens_streams_the_final_answer(user: User) -> None:
    events = list(AgentService().stream_run(user, "Tell me a story.", tokens=True))

    names = [e.event for e in events]
    assert names[:2] == ["run", "plan"]
    assert names[-1] == "done"
    tokens = [e.data["text"] for e in events if e.event == "token"]
    assert len(tokens) > 1
    assert "".join(tokens) == events[-1].data["response"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop_after", ["run", "plan", "tool_call"])
def test_closing_the_stream_early_records_a_cancelled_run(stop_after: str) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    stream = AgentService().stream_run(admin, USERS_QUESTION)
    seen = events_until(stream, stop_after)
    stream.close()

    run = AgentRun.objects.get(pk=seen[0].data["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert run.finished_at is not None
    assert run.latency_ms is not None
    if stop_after == "tool_call":
        assert [c["name"] for c in run.tool_calls] == ["list_users"]

    # The thread goes on: no tool call is left unanswered and the next turn succeeds.
    thread_id = seen[0].data["thread_id"]
    again = AgentService().run_agent(admin, "Hello again", thread_id=thread_id)
    assert again["status"] == "success"
    assert_every_tool_call_answered(thread_id)


@pytest.mark.django_db(transaction=True)
def test_closing_the_stream_after_a_tool_call_with_a_slow_checkpointer_keeps_the_thread_valid(
    user: User,
) -> None:
    """The same as above, made deterministic: checkpoint writes take 0.3 s, as they may on a
    busy or remote PostgreSQL. The repair must see the tool call the executor just made."""
    service = AgentService(checkpointer=SlowSaver(get_checkpointer(), delay=0.3))
    stream = service.stream_run(user, "What are my items?")
    seen = events_until(stream, "tool_call")
    stream.close()

    run = AgentRun.objects.get(pk=seen[0].data["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert_every_tool_call_answered(seen[0].data["thread_id"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cancel_after", ["plan", "tool_call"])
def test_setting_the_cancel_event_stops_the_run(cancel_after: str) -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    cancel = threading.Event()
    events = []
    for event in AgentService().stream_run(admin, USERS_QUESTION, cancel=cancel):
        events.append(event)
        if event.event == cancel_after:
            cancel.set()  # the client left

    names = [e.event for e in events]
    assert (
        names[: names.index(cancel_after) + 1]
        == ["run", "plan", "tool_call"][: names.index(cancel_after) + 1]
    )
    assert names[-1] == "error"
    assert "done" not in names
    error = events[-1]
    assert error.data["code"] == "cancelled"
    assert isinstance(error.exception, RunCancelled)
    run = AgentRun.objects.get(pk=events[0].data["run_id"])
    assert run.status == AgentRun.Status.ERROR
    assert "cancelled" in run.error
    assert run.response == ""
    thread_id = events[0].data["thread_id"]
    assert AgentService().run_agent(admin, "Hello again", thread_id=thread_id)["status"] == (
        "success"
    )
    assert_every_tool_call_answered(thread_id)


@pytest.mark.django_db
def test_the_checkpointer_matches_the_database(user: User) -> None:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    result = AgentService().run_agent(user, "Remember me.")
    saver = get_checkpointer()
    thread_id = result["thread_id"]
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
