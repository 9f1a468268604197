"""The planner → executor ⇄ tools graph, driven by LangChain's fake chat model.

No Django database and no network: the tools are in-test functions or the real database tools
over a dict-backed ``Directory``.
"""

from __future__ import annotations

import ast
import itertools
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from agents.graph.builder import build_graph
from agents.graph.nodes import STEP_LIMIT_ERROR
from agents.graph.tools import Record, create_database_tools, read_tool_error, tool_error

ALICE_ID = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ITEM_ID = uuid.UUID("00000000-0000-4000-8000-0000000000f1")


# -- a recording fake model -----------------------------------------------------------------


@dataclass
class ModelCall:
    messages: list[BaseMessage]
    tools: tuple[str, ...] | None  # None: the call was made without bound tools

    @property
    def conversation(self) -> list[BaseMessage]:
        return [m for m in self.messages if not isinstance(m, SystemMessage)]


class RecordingChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that records every call and which tools were bound for it.

    ``bind_tools`` returns a shallow copy that shares the response iterator and the call log,
    so planner (unbound) and executor (bound) calls interleave in one script.
    """

    calls: list[ModelCall] = Field(default_factory=list)
    bound_tools: tuple[str, ...] | None = None

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RecordingChatModel:
        return self.model_copy(update={"bound_tools": tuple(t.name for t in tools)})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(ModelCall(messages=list(messages), tools=self.bound_tools))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    @property
    def planner_calls(self) -> list[ModelCall]:
        return [c for c in self.calls if c.tools is None]

    @property
    def executor_calls(self) -> list[ModelCall]:
        return [c for c in self.calls if c.tools is not None]


def fake_model(
    responses: Iterator[AIMessage | str] | Sequence[AIMessage | str],
) -> RecordingChatModel:
    return RecordingChatModel(messages=iter(responses))


_call_ids = itertools.count(1)


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call_{next(_call_ids)}", "type": "tool_call"}


def calls_tools(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


# -- tools ----------------------------------------------------------------------------------


class DictDirectory:
    """A Directory over plain dicts: the caller is Alice, who sees only herself."""

    def __init__(self) -> None:
        self.users_by_email: dict[str, Record] = {
            "alice@example.com": {
                "id": str(ALICE_ID),
                "email": "alice@example.com",
                "full_name": "Alice Example",
                "is_active": True,
                "is_superuser": False,
            }
        }
        self.items: dict[uuid.UUID, Record] = {
            ITEM_ID: {"id": str(ITEM_ID), "title": "Lamp", "owner_id": str(ALICE_ID)}
        }
        self.lookups: list[tuple[str, Any]] = []

    def user_by_email(self, email: str) -> Record | None:
        self.lookups.append(("user_by_email", email))
        return self.users_by_email.get(email.strip().lower())

    def item_by_id(self, item_id: uuid.UUID) -> Record | None:
        self.lookups.append(("item_by_id", item_id))
        return self.items.get(item_id)

    def user_items(self, user_id: uuid.UUID | None, limit: int) -> list[Record] | None:
        self.lookups.append(("user_items", user_id))
        if user_id not in (None, ALICE_ID):
            return None
        return list(self.items.values())[:limit]

    def users(self, limit: int) -> list[Record]:
        self.lookups.append(("users", limit))
        return list(self.users_by_email.values())[:limit]


class BrokenDirectory(DictDirectory):
    def user_by_email(self, email: str) -> Record | None:
        raise RuntimeError("connection refused: postgres://secret@db/prod")


@tool
def boom(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@tool
def echo(text: str) -> str:
    """Echo the text back."""
    return json.dumps({"echo": text})


def db_tools(directory: DictDirectory | None = None) -> list[BaseTool]:
    return create_database_tools(directory or DictDirectory())


def all_tools(directory: DictDirectory | None = None) -> list[BaseTool]:
    return [*db_tools(directory), boom, echo]


# -- helpers --------------------------------------------------------------------------------


def run(
    model: RecordingChatModel,
    tools: list[BaseTool],
    text: str = "Who am I?",
    *,
    thread_id: str = "t-1",
    checkpointer: InMemorySaver | None = None,
    **graph_options: Any,
) -> tuple[dict[str, Any], list[str]]:
    """Run one turn; return the final state and the nodes in the order they ran."""
    graph = build_graph(
        model=model, tools=tools, checkpointer=checkpointer or InMemorySaver(), **graph_options
    )
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}, "recursion_limit": 50}
    nodes: list[str] = []
    for update in graph.stream(
        {"messages": [HumanMessage(content=text)]}, config, stream_mode="updates"
    ):
        nodes.extend(update)
    return graph.get_state(config).values, nodes


def tool_messages(messages: Sequence[AnyMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def payload(message: ToolMessage) -> dict[str, Any]:
    return json.loads(message.text)


def assert_every_call_answered(messages: Sequence[BaseMessage]) -> None:
    """Each AI tool call (valid or not) is followed by exactly one ToolMessage with its id."""
    answered = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    asked: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, AIMessage):
            continue
        ids = [c["id"] for c in message.tool_calls] + [c["id"] for c in message.invalid_tool_calls]
        asked.extend(i for i in ids if i)
        following = messages[index + 1 : index + 1 + len(ids)]
        assert [m.tool_call_id for m in following if isinstance(m, ToolMessage)] == ids
    assert sorted(answered) == sorted(asked)
    assert len(set(answered)) == len(answered)


# -- planner and executor -------------------------------------------------------------------


def test_plan_is_stored_and_only_the_executor_gets_tools() -> None:
    model = fake_model(["1. Call lookup_user_by_email.\n2. Answer.", "You are Alice."])
    tools = db_tools()

    state, nodes = run(model, tools)

    assert nodes == ["planner", "executor"]
    assert state["plan"] == "1. Call lookup_user_by_email.\n2. Answer."
    assert state["messages"][-1].content == "You are Alice."
    assert state["error"] is None

    planner, executor = model.calls
    assert planner.tools is None
    assert executor.tools == tuple(t.name for t in tools)
    # Each node gets its own system prompt: the planner lists the tools, the executor the plan.
    assert isinstance(planner.messages[0], SystemMessage)
    assert "- lookup_user_by_email" in planner.messages[0].text
    assert "1. Call lookup_user_by_email." in executor.messages[0].text
    assert [m.text for m in planner.conversation] == ["Who am I?"]
    assert [m.text for m in executor.conversation] == ["Who am I?"]


def test_graph_without_tools_calls_an_unbound_model() -> None:
    model = fake_model(["Just answer.", "Hello!"])

    state, nodes = run(model, [], "Hi")

    assert nodes == ["planner", "executor"]
    assert [c.tools for c in model.calls] == [None, None]
    assert "(no tools available)" in model.calls[0].messages[0].text
    assert state["messages"][-1].content == "Hello!"


def test_executor_tools_executor_end() -> None:
    directory = DictDirectory()
    lookup = call("lookup_user_by_email", email="alice@example.com")
    model = fake_model(["1. Look up.", calls_tools(lookup), "You are Alice Example."])

    state, nodes = run(model, db_tools(directory))

    assert nodes == ["planner", "executor", "tools", "executor"]
    assert directory.lookups == [("user_by_email", "alice@example.com")]
    messages = state["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    result = messages[2]
    assert result.tool_call_id == lookup["id"]
    assert result.name == "lookup_user_by_email"
    assert result.status == "success"
    assert payload(result)["user"]["full_name"] == "Alice Example"
    assert result.additional_kwargs["duration_ms"] >= 0
    assert messages[-1].content == "You are Alice Example."
    # The executor's second call sees the tool call and its result.
    second = model.executor_calls[1]
    assert [type(m) for m in second.conversation] == [HumanMessage, AIMessage, ToolMessage]
    assert state["steps"] == 2


def test_every_tool_call_in_a_message_gets_an_answer_in_order() -> None:
    calls = [
        call("lookup_user_by_email", email="alice@example.com"),
        call("boom", reason="x"),
        call("lookup_item_by_id", item_id=str(ITEM_ID)),
        call("no_such_tool"),
        call("lookup_user_by_email", email="nobody@example.com"),
    ]
    model = fake_model(["plan", calls_tools(*calls), "done"])

    state, _ = run(model, all_tools())

    results = tool_messages(state["messages"])
    assert [m.tool_call_id for m in results] == [c["id"] for c in calls]
    assert [m.name for m in results] == [c["name"] for c in calls]
    assert [m.status for m in results] == ["success", "error", "success", "error", "error"]
    assert payload(results[4]) == {
        "error": "user with email nobody@example.com not found",
        "code": "not_found",
    }
    assert_every_call_answered(state["messages"])


def test_a_raising_tool_becomes_an_error_result_and_the_loop_goes_on() -> None:
    failing = call("boom", reason="disk full")
    model = fake_model(
        ["plan", calls_tools(failing), calls_tools(call("echo", text="retry")), "Recovered."]
    )

    state, nodes = run(model, all_tools())

    assert nodes == ["planner", "executor", "tools", "executor", "tools", "executor"]
    first, second = tool_messages(state["messages"])
    assert first.tool_call_id == failing["id"]
    assert first.status == "error"
    assert payload(first) == {"error": "ValueError: boom: disk full", "code": "tool_error"}
    assert second.status == "success"
    assert payload(second) == {"echo": "retry"}
    assert state["messages"][-1].content == "Recovered."
    assert state["error"] is None
    # The model saw the failure before deciding what to do next.
    assert model.executor_calls[1].conversation[-1].tool_call_id == failing["id"]


def test_database_tool_failure_is_reported_without_leaking_the_exception() -> None:
    failing = call("lookup_user_by_email", email="alice@example.com")
    model = fake_model(["plan", calls_tools(failing), "Sorry."])

    state, _ = run(model, db_tools(BrokenDirectory()))

    (result,) = tool_messages(state["messages"])
    assert result.status == "error"
    assert payload(result) == {"error": "lookup failed: RuntimeError", "code": "tool_error"}
    assert "secret" not in result.text


@pytest.mark.parametrize(
    ("tool_call", "problem"),
    [
        (call("lookup_item_by_id", item_id="not-a-uuid"), "item_id"),
        (call("lookup_user_by_email"), "email: Field required"),
        (call("lookup_user_items", limit=500), "limit"),
        (call("echo", text={"nested": "object"}), "text"),
    ],
    ids=["bad-uuid", "missing", "out-of-range", "wrong-type"],
)
def test_invalid_arguments_become_an_error_result(tool_call: dict[str, Any], problem: str) -> None:
    directory = DictDirectory()
    model = fake_model(["plan", calls_tools(tool_call), "I could not look that up."])

    state, nodes = run(model, all_tools(directory))

    assert nodes == ["planner", "executor", "tools", "executor"]
    (result,) = tool_messages(state["messages"])
    assert result.tool_call_id == tool_call["id"]
    assert result.status == "error"
    data = payload(result)
    assert data["code"] == "invalid_arguments"
    assert data["error"].startswith("invalid arguments: ")
    assert problem in data["error"]
    assert directory.lookups == []  # the tool body never ran
    assert state["messages"][-1].content == "I could not look that up."


def test_unknown_tool_becomes_an_error_result() -> None:
    unknown = call("drop_database", confirm=True)
    model = fake_model(["plan", calls_tools(unknown), "That tool does not exist."])

    state, nodes = run(model, all_tools())

    assert nodes == ["planner", "executor", "tools", "executor"]
    (result,) = tool_messages(state["messages"])
    assert result.tool_call_id == unknown["id"]
    assert result.name == "drop_database"
    assert result.status == "error"
    assert payload(result) == {
        "error": "there is no tool named 'drop_database'",
        "code": "unknown_tool",
    }


def test_invalid_tool_calls_are_answered_too() -> None:
    broken = AIMessage(
        content="",
        tool_calls=[call("echo", text="fine")],
        invalid_tool_calls=[
            {
                "name": "lookup_user_by_email",
                "args": '{"email": "alice@',
                "id": "call_broken",
                "error": "Unterminated string",
                "type": "invalid_tool_call",
            }
        ],
    )
    model = fake_model(["plan", broken, "Done."])

    state, nodes = run(model, all_tools())

    assert nodes == ["planner", "executor", "tools", "executor"]
    valid, invalid = tool_messages(state["messages"])
    assert valid.status == "success"
    assert invalid.tool_call_id == "call_broken"
    assert invalid.name == "lookup_user_by_email"
    assert invalid.status == "error"
    data = payload(invalid)
    assert data["code"] == "invalid_arguments"
    assert "Unterminated string" in data["error"]
    assert_every_call_answered(state["messages"])


def test_only_invalid_tool_calls_still_route_to_the_tools_node() -> None:
    broken = AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": "echo",
                "args": "{",
                "id": "call_x",
                "error": "bad",
                "type": "invalid_tool_call",
            }
        ],
    )
    model = fake_model(["plan", broken, "Done."])

    state, nodes = run(model, all_tools())

    assert nodes == ["planner", "executor", "tools", "executor"]
    assert_every_call_answered(state["messages"])


# -- the step limit -------------------------------------------------------------------------


def always_calls_tools() -> Iterator[AIMessage | str]:
    yield "1. Keep looking."
    while True:
        yield calls_tools(call("echo", text="again"), call("boom", reason="again"))


def test_step_limit_stops_a_looping_agent_and_answers_pending_calls() -> None:
    model = fake_model(always_calls_tools())

    state, nodes = run(model, all_tools(), max_steps=2)

    assert nodes == ["planner", "executor", "tools", "executor", "step_limit"]
    assert state["error"] == STEP_LIMIT_ERROR == "step_limit"
    assert state["steps"] == 2
    assert len(model.executor_calls) == 2

    messages = state["messages"]
    last_ai = next(m for m in reversed(messages) if isinstance(m, AIMessage))
    pending = messages[messages.index(last_ai) + 1 :]
    assert [m.tool_call_id for m in pending] == [c["id"] for c in last_ai.tool_calls]
    for message in pending:
        assert isinstance(message, ToolMessage)
        assert message.status == "error"
        assert payload(message)["code"] == "not_executed"
        assert "step limit" in payload(message)["error"]
    # The first step's calls really ran; the last step's did not.
    executed = [payload(m).get("code") for m in tool_messages(messages)[:2]]
    assert executed == [None, "tool_error"]
    assert_every_call_answered(messages)


def test_thread_stays_usable_after_the_step_limit() -> None:
    saver = InMemorySaver()
    looping = fake_model(always_calls_tools())
    run(looping, all_tools(), "Loop", checkpointer=saver, max_steps=1)

    model = fake_model(["plan", "Fine now."])
    state, nodes = run(model, all_tools(), "Try again", checkpointer=saver, max_steps=1)

    assert nodes == ["planner", "executor"]
    assert state["error"] is None
    assert state["messages"][-1].content == "Fine now."
    assert_every_call_answered(model.executor_calls[0].messages)


# -- memory ---------------------------------------------------------------------------------


def test_second_turn_on_a_thread_sees_the_first() -> None:
    saver = InMemorySaver()
    lookup = call("lookup_user_by_email", email="alice@example.com")
    first = fake_model(["plan A", calls_tools(lookup), "You are Alice."])
    run(first, all_tools(), "Who am I?", checkpointer=saver, thread_id="memory")

    second = fake_model(["plan B", "You asked who you are."])
    state, _ = run(second, all_tools(), "What did I ask?", checkpointer=saver, thread_id="memory")

    planner, executor = second.calls
    # The planner sees the conversation without tool traffic ...
    assert [(type(m), m.text) for m in planner.conversation] == [
        (HumanMessage, "Who am I?"),
        (AIMessage, "You are Alice."),
        (HumanMessage, "What did I ask?"),
    ]
    # ... the executor sees all of it.
    assert [type(m) for m in executor.conversation] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
        HumanMessage,
    ]
    assert executor.conversation[1].tool_calls[0]["id"] == lookup["id"]
    assert state["plan"] == "plan B"
    assert len(state["messages"]) == 6


def test_threads_do_not_share_memory() -> None:
    saver = InMemorySaver()
    run(fake_model(["plan", "Hi Alice."]), [], "I am Alice", checkpointer=saver, thread_id="a")

    model = fake_model(["plan", "Who?"])
    run(model, [], "Who am I?", checkpointer=saver, thread_id="b")

    assert [m.text for m in model.calls[1].conversation] == ["Who am I?"]


def test_steps_are_reset_for_every_run() -> None:
    saver = InMemorySaver()
    for turn in range(3):
        model = fake_model(["plan", calls_tools(call("echo", text=str(turn))), f"answer {turn}"])
        state, nodes = run(model, all_tools(), f"turn {turn}", checkpointer=saver, max_steps=2)
        # Without the reset the second run would start at 2 steps and hit the limit.
        assert nodes == ["planner", "executor", "tools", "executor"]
        assert state["steps"] == 2
        assert state["error"] is None
        assert state["messages"][-1].content == f"answer {turn}"


# -- history trimming -----------------------------------------------------------------------


def _assert_valid_window(call_: ModelCall, max_messages: int) -> None:
    window = call_.conversation
    assert window, "the model was called without any conversation"
    assert len(window) <= max_messages
    assert isinstance(window[0], HumanMessage)
    # Every result follows its call and every call before the last message has its result.
    asked = {c["id"] for m in window if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in window if isinstance(m, ToolMessage)}
    assert answered <= asked
    assert asked == answered


def test_history_trimming_starts_on_a_human_turn_and_keeps_tool_pairs() -> None:
    saver = InMemorySaver()
    max_messages = 4
    for turn in range(3):
        model = fake_model(
            [
                "plan",
                calls_tools(call("echo", text=f"{turn}-a"), call("echo", text=f"{turn}-b")),
                f"answer {turn}",
            ]
        )
        state, _ = run(
            model,
            all_tools(),
            f"question {turn}",
            checkpointer=saver,
            max_history_messages=max_messages,
        )
        # [.., answer, question, AI(2 calls), result, result] only fits from the question on:
        # a window of the last 4 messages would start on an AI message or a tool result.
        for executor_call in model.executor_calls:
            _assert_valid_window(executor_call, max_messages)
            assert executor_call.conversation[0].text == f"question {turn}"
        assert len(model.executor_calls[1].conversation) == 4
        # The planner's window is trimmed the same way, then stripped of tool traffic.
        planner_window = model.planner_calls[0].conversation
        assert [m.text for m in planner_window] == [f"question {turn}"]

    # The checkpoint keeps everything; only what is sent to the model is trimmed.
    assert len(state["messages"]) == 3 * 5


def test_history_trimming_keeps_earlier_turns_that_fit() -> None:
    saver = InMemorySaver()
    run(fake_model(["plan", "one"]), [], "first", checkpointer=saver, max_history_messages=3)
    model = fake_model(["plan", "two"])
    run(model, [], "second", checkpointer=saver, max_history_messages=3)

    # [first, one, second] fits in 3 messages.
    assert [m.text for m in model.calls[1].conversation] == ["first", "one", "second"]

    model = fake_model(["plan", "three"])
    run(model, [], "third", checkpointer=saver, max_history_messages=3)
    # [one, second, two, third] does not: the window starts on the next human turn.
    assert [m.text for m in model.calls[1].conversation] == ["second", "two", "third"]


def test_executor_always_sees_the_current_question() -> None:
    model = fake_model(
        [
            "plan",
            calls_tools(call("echo", text="a"), call("echo", text="b")),
            calls_tools(call("echo", text="c")),
            "done",
        ]
    )

    run(model, all_tools(), "the question", max_history_messages=4)

    for executor_call in model.executor_calls:
        assert any(
            isinstance(m, HumanMessage) and m.text == "the question"
            for m in executor_call.conversation
        )


# -- tool errors -----------------------------------------------------------------------------


def test_a_tool_error_reads_back_and_a_result_is_no_error() -> None:
    written = tool_error("item 42 not found", code="not_found")

    assert json.loads(written) == {"error": "item 42 not found", "code": "not_found"}
    assert read_tool_error(written) == ("item 42 not found", "not_found")
    assert read_tool_error(json.dumps({"items": [], "count": 0})) is None
    assert read_tool_error("plain text from a tool") is None
    assert read_tool_error(json.dumps(["error"])) is None


def test_the_graph_package_imports_no_django_code() -> None:
    """Tools get their data access injected: nothing under agents/graph/ reaches Django."""
    forbidden = ("django", "rest_framework", "accounts", "config", "agents.models")
    package = Path(__file__).resolve().parent.parent / "graph"
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), f"{module.name} imports {name}"


def test_the_short_history_shortcut_gives_what_trim_messages_gives() -> None:
    from langchain_core.messages import trim_messages

    from agents.graph.nodes import _recent

    call = {"name": "list_users", "args": {}, "id": "c1"}
    turns: list[list[Any]] = [
        [],
        [HumanMessage("hi")],
        [HumanMessage("hi"), AIMessage("hello"), HumanMessage("users?")],
        [
            HumanMessage("users?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage("{}", tool_call_id="c1"),
            AIMessage("none"),
        ],
        [AIMessage("left over"), HumanMessage("hi")],  # not on a human turn: the slow path
    ]
    for messages in turns:
        for limit in (len(messages), len(messages) + 5, 40):
            expected = trim_messages(
                messages,
                max_tokens=limit,
                token_counter=len,
                strategy="last",
                start_on="human",
                allow_partial=False,
            )
            assert _recent(messages, limit) == expected, (messages, limit)
