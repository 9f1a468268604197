"""Tests for the deterministic offline chat model (no Django, no network)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

from agents.llm.offline import OfflineChatModel, count_tokens, detect_calls

ITEM_ID = "123e4567-e89b-42d3-a456-426614174000"
ALICE = {
    "id": "u-1",
    "email": "alice@example.com",
    "full_name": "Alice Example",
    "is_active": True,
    "is_superuser": False,
}
BOB = {
    "id": "u-2",
    "email": "bob@example.com",
    "full_name": "Bob Builder",
    "is_active": True,
    "is_superuser": True,
}


# -- fake tools (same names and signatures as the real ones) ---------------------------


@tool
def lookup_user_by_email(email: str) -> str:
    """Look up a user by email address."""
    for user in (ALICE, BOB):
        if user["email"] == email:
            return json.dumps({"user": user})
    return json.dumps({"error": f"No user with email {email}.", "code": "not_found"})


@tool
def lookup_item_by_id(item_id: str) -> str:
    """Look up an item by its id."""
    return json.dumps({"error": "Item not found.", "code": "not_found"})


@tool
def lookup_user_items(user_id: str | None = None, limit: int = 10) -> str:
    """List the items of a user (the calling user when user_id is omitted)."""
    return json.dumps({"user_id": user_id or "u-1", "items": [], "count": 0})


@tool
def list_users(limit: int = 20) -> str:
    """List the users in the system."""
    return json.dumps({"users": [ALICE, BOB][:limit], "count": 2})


@tool
def http_get(url: str, headers: dict[str, str] | None = None) -> str:
    """Fetch a URL with GET."""
    return json.dumps({"status_code": 200, "url": url, "body": "ok", "truncated": False})


ALL_TOOLS = [lookup_user_by_email, lookup_item_by_id, lookup_user_items, list_users, http_get]


@pytest.fixture
def model() -> OfflineChatModel:
    return OfflineChatModel()


def executor(model: OfflineChatModel, tools: list[Any] | None = None) -> Any:
    return model.bind_tools(ALL_TOOLS if tools is None else tools)


def ask(text: str) -> list[BaseMessage]:
    return [SystemMessage("You are a helpful agent. Plan:\n1. ..."), HumanMessage(text)]


def call_names(message: AIMessage) -> list[str]:
    return [call["name"] for call in message.tool_calls]


# -- metadata --------------------------------------------------------------------------


def test_identity_and_metadata(model: OfflineChatModel) -> None:
    assert model._llm_type == "offline"
    assert model.model_name == "offline"
    result = model.invoke([HumanMessage("hello")])
    assert result.response_metadata["model_name"] == "offline"
    assert result.response_metadata["model_provider"] == "offline"
    assert result.response_metadata["finish_reason"] == "stop"


def test_usage_counts(model: OfflineChatModel) -> None:
    messages = ask("Who is alice@example.com?")
    result = executor(model).invoke(messages)
    usage = result.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    expected_input = sum(count_tokens(str(m.content)) for m in messages)
    assert usage["input_tokens"] == expected_input


# -- planner mode ----------------------------------------------------------------------


def test_planner_mentions_tools(model: OfflineChatModel) -> None:
    plan = model.invoke(ask(f"Who is alice@example.com and what is item {ITEM_ID}?"))
    assert not plan.tool_calls
    text = plan.text
    assert text.startswith("1. ")
    assert "lookup_user_by_email" in text
    assert "alice@example.com" in text
    assert "lookup_item_by_id" in text
    assert ITEM_ID in text
    assert "Answer from what the tools return." in text


def test_planner_uses_last_human_message(model: OfflineChatModel) -> None:
    messages = [
        HumanMessage("Who is alice@example.com?"),
        AIMessage("Alice."),
        HumanMessage("What users are in the system?"),
    ]
    text = model.invoke(messages).text
    assert "list_users" in text
    assert "lookup_user_by_email" not in text


def test_planner_without_intent(model: OfflineChatModel) -> None:
    assert (
        model.invoke(ask("Hello there")).text == "1. Answer directly from the conversation so far."
    )


# -- executor mode: tool calls ---------------------------------------------------------


def test_email_calls_lookup_user_by_email(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask("Who are alice@example.com and bob@example.com?"))
    assert result.content == ""
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [
        ("lookup_user_by_email", {"email": "alice@example.com"}),
        ("lookup_user_by_email", {"email": "bob@example.com"}),
    ]
    ids = [c["id"] for c in result.tool_calls]
    assert all(i and i.startswith("call_") for i in ids)
    assert len(set(ids)) == 2
    assert result.response_metadata["finish_reason"] == "tool_calls"


def test_uuid_calls_lookup_item_by_id(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask(f"Show me item {ITEM_ID.upper()} please"))
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [
        ("lookup_item_by_id", {"item_id": ITEM_ID})
    ]


def test_seed_question_calls_list_users(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask("What users are in the system?"))
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [("list_users", {})]


def test_my_items_calls_lookup_user_items(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask("show my items"))
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [("lookup_user_items", {})]


def test_url_calls_http_get(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask("Fetch https://example.com/status?x=1."))
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [
        ("http_get", {"url": "https://example.com/status?x=1"})
    ]


def test_only_bound_tools_are_called(model: OfflineChatModel) -> None:
    bound = executor(model, [lookup_user_by_email])
    result = bound.invoke(ask("What users are in the system? And who is alice@example.com?"))
    assert call_names(result) == ["lookup_user_by_email"]

    unbound = executor(model, [lookup_user_by_email]).invoke(ask("Fetch https://example.com"))
    assert not unbound.tool_calls
    assert "http_get" in unbound.text
    assert "not available" in unbound.text


def test_no_intent_answers_directly(model: OfflineChatModel) -> None:
    result = executor(model).invoke(ask("Hello there"))
    assert not result.tool_calls
    assert 'You said: "Hello there".' in result.text
    assert "offline model" in result.text


def test_detect_calls_ignores_emails_inside_urls() -> None:
    calls = detect_calls("get https://example.com/u/alice@example.com")
    assert [c.name for c in calls] == ["http_get"]


# -- executor mode: final answer -------------------------------------------------------


def tool_round(model: OfflineChatModel, question: str, tools: list[Any]) -> list[BaseMessage]:
    """Run one real tool round: question -> tool calls -> tool messages."""
    messages: list[BaseMessage] = ask(question)
    ai = executor(model, tools).invoke(messages)
    assert ai.tool_calls
    by_name = {t.name: t for t in tools}
    tool_messages = [
        ToolMessage(by_name[c["name"]].invoke(c["args"]), tool_call_id=c["id"], name=c["name"])
        for c in ai.tool_calls
    ]
    return [*messages, ai, *tool_messages]


def test_final_answer_summarises_tool_results(model: OfflineChatModel) -> None:
    tools = [lookup_user_by_email, list_users, lookup_item_by_id]
    messages = tool_round(
        model,
        f"Who is alice@example.com, who is nobody@example.com, item {ITEM_ID}, which users?",
        tools,
    )
    answer = executor(model, tools).invoke(messages)
    assert not answer.tool_calls
    text = answer.text
    assert "alice@example.com: Alice Example" in text
    assert "Not found: user with email nobody@example.com" in text
    assert f"Not found: item with id {ITEM_ID}" in text
    assert "2 users in the system" in text
    assert "bob@example.com (Bob Builder)" in text
    assert answer.response_metadata["finish_reason"] == "stop"


def test_final_answer_handles_items_http_and_odd_results(model: OfflineChatModel) -> None:
    ai = AIMessage(
        "",
        tool_calls=[
            {"name": "lookup_user_items", "args": {}, "id": "c1"},
            {"name": "http_get", "args": {"url": "https://example.com"}, "id": "c2"},
            {"name": "lookup_item_by_id", "args": {"item_id": ITEM_ID}, "id": "c3"},
            {"name": "list_users", "args": {}, "id": "c4"},
            {"name": "http_get", "args": {"url": "https://bad.example"}, "id": "c5"},
        ],
    )
    items = {
        "user_id": "u-1",
        "items": [{"id": "i-1", "title": "Lamp", "description": "A desk lamp", "owner_id": "u-1"}],
        "count": 1,
    }
    item = {"item": {"id": ITEM_ID, "title": "Chair", "description": "", "owner_id": "u-2"}}
    http = {
        "status_code": 200,
        "url": "https://example.com",
        "content_type": "text/html",
        "body": "<h1>Hello</h1>" + "x" * 500,
        "truncated": True,
    }
    messages = [
        HumanMessage("show my items, item ..., fetch ..."),
        ai,
        ToolMessage(json.dumps(items), tool_call_id="c1"),
        ToolMessage(json.dumps(http), tool_call_id="c2", name="http_get"),
        ToolMessage(json.dumps(item), tool_call_id="c3"),
        ToolMessage("Error: boom. Please fix your mistakes.", tool_call_id="c4", status="error"),
        ToolMessage(json.dumps({"error": "refused", "code": "blocked"}), tool_call_id="c5"),
    ]
    text = executor(model).invoke(messages).text
    assert "1 item found for you:" in text
    assert '"Lamp" (id i-1): A desk lamp' in text
    assert "GET https://example.com returned HTTP 200 (text/html)" in text
    assert "<h1>Hello</h1>" in text
    assert "truncated" in text
    assert f'Item "Chair" (id {ITEM_ID}): (no description)' in text
    assert "list_users failed: Error: boom." in text
    assert "Error from http_get for https://bad.example (blocked): refused" in text
    assert max(len(line) for line in text.splitlines()) < 300


def test_non_json_tool_result(model: OfflineChatModel) -> None:
    messages = [
        HumanMessage("which users?"),
        AIMessage("", tool_calls=[{"name": "list_users", "args": {}, "id": "c1"}]),
        ToolMessage("plain text result", tool_call_id="c1", name="list_users"),
    ]
    text = executor(model).invoke(messages).text
    assert 'list_users returned: "plain text result"' in text


# -- memory and determinism ------------------------------------------------------------


def test_memory_quotes_earlier_human_message(model: OfflineChatModel) -> None:
    messages = [
        SystemMessage("system"),
        HumanMessage("My name is Ada."),
        AIMessage("Nice to meet you."),
        SystemMessage("system again"),
        HumanMessage("What did I tell you?"),
    ]
    text = executor(model).invoke(messages).text
    assert 'You said: "What did I tell you?"' in text
    assert 'Earlier in this conversation you said: "My name is Ada."' in text
    assert "(1 earlier message in total)" in text


def test_long_messages_are_truncated(model: OfflineChatModel) -> None:
    text = executor(model).invoke([HumanMessage("blah " * 200)]).text
    assert len(text.splitlines()[0]) < 400
    assert "…" in text


def test_deterministic(model: OfflineChatModel) -> None:
    for question in ["Who is alice@example.com?", "hello", "What users are in the system?"]:
        first = executor(model).invoke(ask(question))
        second = executor(OfflineChatModel()).invoke(ask(question))
        assert first.content == second.content
        assert first.tool_calls == second.tool_calls
        assert first.usage_metadata == second.usage_metadata
        assert first.response_metadata == second.response_metadata


# -- streaming -------------------------------------------------------------------------


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


@pytest.mark.parametrize(
    "question",
    ["Who is alice@example.com and which users exist?", "hello there, how are you?"],
)
def test_stream_matches_invoke(model: OfflineChatModel, question: str) -> None:
    bound = executor(model)
    invoked = bound.invoke(ask(question))
    chunks = list(bound.stream(ask(question)))
    assert len(chunks) > 1
    streamed = aggregate(chunks)
    assert streamed.content == invoked.content
    assert streamed.tool_calls == invoked.tool_calls
    assert streamed.usage_metadata == invoked.usage_metadata
    assert streamed.response_metadata == invoked.response_metadata
    # Only the last chunk carries usage and the finish reason.
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata == invoked.usage_metadata
    assert (
        chunks[-1].response_metadata["finish_reason"] == invoked.response_metadata["finish_reason"]
    )


def test_stream_text_in_word_chunks(model: OfflineChatModel) -> None:
    chunks = list(model.stream([HumanMessage("hello")]))
    assert len(chunks) >= 3
    assert "".join(str(c.content) for c in chunks) == model.invoke([HumanMessage("hello")]).text


def test_stream_delay(model: OfflineChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("agents.llm.offline.time.sleep", sleeps.append)
    chunks = list(OfflineChatModel(stream_delay=0.01).stream([HumanMessage("hi")]))
    assert sleeps == [0.01] * (len(chunks) - 1)
    list(model.stream([HumanMessage("hi")]))
    assert len(sleeps) == len(chunks) - 1


def test_async_matches_sync(model: OfflineChatModel) -> None:
    bound = executor(model)

    async def run() -> tuple[AIMessage, list[AIMessageChunk]]:
        result = await bound.ainvoke(ask("Who is alice@example.com?"))
        return result, [c async for c in bound.astream(ask("hello"))]

    result, chunks = asyncio.run(run())
    assert result.tool_calls == bound.invoke(ask("Who is alice@example.com?")).tool_calls
    assert aggregate(chunks).content == bound.invoke(ask("hello")).content


# -- end to end with a real LangGraph loop ---------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(model: OfflineChatModel) -> Any:
    tools = [lookup_user_by_email, list_users]
    bound = model.bind_tools(tools)

    def agent(state: State) -> dict[str, list[BaseMessage]]:
        system = SystemMessage("You are a helpful agent.")
        return {"messages": [bound.invoke([system, *state["messages"]])]}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def test_langgraph_loop_and_memory(model: OfflineChatModel) -> None:
    graph = build_graph(model)
    config = {"configurable": {"thread_id": "t-1"}}

    first = graph.invoke({"messages": [HumanMessage("What users are in the system?")]}, config)
    messages = first["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert call_names(messages[1]) == ["list_users"]
    assert messages[2].tool_call_id == messages[1].tool_calls[0]["id"]
    final = messages[3]
    assert not final.tool_calls
    assert "2 users in the system" in final.text
    assert "alice@example.com (Alice Example)" in final.text

    second = graph.invoke({"messages": [HumanMessage("Thanks! Anything else?")]}, config)
    messages = second["messages"]
    assert len(messages) == 6
    answer = messages[-1]
    assert not answer.tool_calls
    assert 'You said: "Thanks! Anything else?"' in answer.text
    assert 'Earlier in this conversation you said: "What users are in the system?"' in answer.text

    third = graph.invoke({"messages": [HumanMessage("Who is ghost@example.com?")]}, config)
    messages = third["messages"]
    assert [m.type for m in messages[6:]] == ["human", "ai", "tool", "ai"]
    assert "Not found: user with email ghost@example.com" in messages[-1].text


def test_langgraph_streaming_messages(model: OfflineChatModel) -> None:
    graph = build_graph(model)
    config = {"configurable": {"thread_id": "t-2"}}
    tokens = [
        chunk.content
        for chunk, _meta in graph.stream(
            {"messages": [HumanMessage("Who is alice@example.com?")]},
            config,
            stream_mode="messages",
        )
        if isinstance(chunk, AIMessageChunk)
    ]
    streamed = "".join(str(t) for t in tokens)
    state = graph.get_state(config).values["messages"]
    assert state[-1].text in streamed
    assert "alice@example.com: Alice Example" in state[-1].text
