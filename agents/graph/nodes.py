"""The graph's nodes: planner (no tools), executor (with tools), tools, and the step limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from agents.graph.prompts import EXECUTOR_PROMPT, PLANNER_PROMPT, tool_list
from agents.graph.state import AgentState, RunContext
from agents.graph.tools import read_tool_error, tool_error

STEP_LIMIT_ERROR = "step_limit"


def _recent(messages: Sequence[AnyMessage], max_messages: int) -> list[AnyMessage]:
    """The tail of the conversation, starting on a human turn so tool calls stay paired.

    The current turn is never cut: if it alone is longer than ``max_messages`` (many tool
    calls), it is kept whole, so the model always sees the question it is answering.
    """
    messages = list(messages)
    if len(messages) <= max_messages and (not messages or isinstance(messages[0], HumanMessage)):
        return messages  # what trim_messages returns here, without its per-call inspection
    trimmed: list[AnyMessage] = trim_messages(  # type: ignore[assignment]
        messages,
        max_tokens=max_messages,
        token_counter=len,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    if humans and len(messages) - humans[-1] > len(trimmed):
        return messages[humans[-1] :]
    return trimmed


def _conversation_only(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """Human turns and final answers: what the planner needs, without tool traffic.

    Some providers (Anthropic) refuse tool blocks in a request that defines no tools.
    """
    kept: list[AnyMessage] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            kept.append(message)
        elif isinstance(message, AIMessage) and not message.tool_calls and message.content:
            kept.append(AIMessage(content=message.content))
    return kept


def pending_tool_calls(message: AnyMessage) -> list[dict[str, Any]]:
    """Every tool call of an AI message, valid or not: each needs an answering ToolMessage."""
    if not isinstance(message, AIMessage):
        return []
    calls: list[dict[str, Any]] = [dict(call) for call in message.tool_calls]
    for invalid in message.invalid_tool_calls:
        calls.append({**invalid, "invalid": True})
    return calls


def make_planner(
    model: BaseChatModel, tool_names: list[str], max_messages: int
) -> Callable[[AgentState], dict[str, Any]]:
    system = SystemMessage(PLANNER_PROMPT.format(tool_list=tool_list(tool_names)))

    def planner(state: AgentState) -> dict[str, Any]:
        history = _conversation_only(_recent(state["messages"], max_messages))
        response = model.invoke([system, *history])
        return {"plan": response.text, "steps": 0, "error": None}

    return planner


def make_executor(
    model: BaseChatModel, tools: list[BaseTool], max_messages: int
) -> Callable[[AgentState], dict[str, Any]]:
    bound: Runnable[Any, Any] = model.bind_tools(tools) if tools else model

    def executor(state: AgentState) -> dict[str, Any]:
        system = SystemMessage(EXECUTOR_PROMPT.format(plan=state.get("plan") or "(no plan)"))
        response = bound.invoke([system, *_recent(state["messages"], max_messages)])
        return {"messages": [response], "steps": state.get("steps", 0) + 1}

    return executor


def approval_request(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What an interrupt for approval carries: the calls that wait for a person's decision."""
    return {
        "tool_calls": [
            {"id": str(call.get("id") or ""), "name": call.get("name"), "args": call.get("args")}
            for call in calls
        ]
    }


def _decided(
    last: AIMessage, needing: list[dict[str, Any]], decision: Any
) -> tuple[AIMessage | None, dict[str, str]]:
    """Apply a person's decision on the calls that waited for it: the AI message with edited
    arguments (None when unchanged) and the refusals, by call id (``reject``)."""
    decision = decision if isinstance(decision, dict) else {}
    kind = decision.get("decision")
    ids = [str(call.get("id") or "") for call in needing]
    if kind == "reject":
        comment = str(decision.get("comment") or "").strip()
        reason = "the user rejected this call" + (f": {comment}" if comment else "")
        return None, dict.fromkeys(ids, reason)
    if kind == "edit" and isinstance(decision.get("args"), dict):
        edited = dict(decision["args"])
        target = str(decision.get("tool_call_id") or ids[0])
        calls = [
            {**call, "args": edited} if str(call.get("id")) == target else call
            for call in last.tool_calls
        ]
        return last.model_copy(update={"tool_calls": calls}), {}
    return None, {}  # approve


def make_tool_node(
    tools: list[BaseTool], approval_tools: frozenset[str] = frozenset()
) -> Callable[[AgentState, Runtime[RunContext]], dict[str, Any]]:
    """Run the last AI message's tool calls in order, in this thread.

    The tools run are the run's own (``RunContext.tools``) when it brings them, else ``tools``.
    Every call gets a ToolMessage, whatever happens: an unanswered tool call breaks the
    thread's next turn at the provider. Each message carries its duration for the run record.

    When a call is to one of ``approval_tools``, nothing runs until a person decides: the node
    interrupts (LangGraph ``interrupt()``, the checkpoint keeps the pending calls) and, resumed
    with ``Command(resume={"decision": "approve" | "reject" | "edit", "args"?, "comment"?})``,
    runs the calls as decided; the other calls of the same turn wait with them.
    """
    compiled = {tool.name: tool for tool in tools}

    def tools_node(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        context = runtime.context
        by_name = {t.name: t for t in context.tools} if context and context.tools else compiled
        last = state["messages"][-1]
        calls = pending_tool_calls(last)
        needing = [c for c in calls if c.get("name") in approval_tools and not c.get("invalid")]
        edited: AIMessage | None = None
        refused: dict[str, str] = {}
        if needing and isinstance(last, AIMessage):
            edited, refused = _decided(last, needing, interrupt(approval_request(needing)))
            if edited is not None:
                calls = pending_tool_calls(edited)
        results: list[AnyMessage] = [edited] if edited is not None else []
        for call in calls:
            name = str(call.get("name") or "")
            started = time.perf_counter()
            tool = by_name.get(name)
            if str(call.get("id") or "") in refused:
                content = tool_error(refused[str(call.get("id") or "")], code="rejected")
            elif call.get("invalid"):
                content = tool_error(
                    f"the arguments were not valid JSON: {call.get('error')}",
                    code="invalid_arguments",
                )
            elif tool is None:
                content = tool_error(f"there is no tool named {name!r}", code="unknown_tool")
            else:
                try:
                    output = tool.invoke(call.get("args") or {})
                    content = output if isinstance(output, str) else json.dumps(output, default=str)
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                        for e in exc.errors()
                    )
                    content = tool_error(f"invalid arguments: {problems}", code="invalid_arguments")
                except Exception as exc:  # a tool failure is the model's problem, not the run's
                    content = tool_error(f"{type(exc).__name__}: {exc}", code="tool_error")
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            ok = read_tool_error(content) is None
            results.append(
                ToolMessage(
                    content=content,
                    tool_call_id=str(call.get("id") or ""),
                    name=name,
                    status="success" if ok else "error",
                    additional_kwargs={"duration_ms": duration_ms},
                )
            )
        return {"messages": results}

    return tools_node


def answer_pending(
    message: AnyMessage, reason: str, *, code: str = "not_executed"
) -> list[ToolMessage]:
    """Error ToolMessages for calls that will not run, so the thread stays valid."""
    return [
        ToolMessage(
            content=tool_error(reason, code=code),
            tool_call_id=str(call.get("id") or ""),
            name=str(call.get("name") or ""),
            status="error",
        )
        for call in pending_tool_calls(message)
    ]


def step_limit(state: AgentState) -> dict[str, Any]:
    reason = "not executed: the agent reached its step limit"
    return {"messages": answer_pending(state["messages"][-1], reason), "error": STEP_LIMIT_ERROR}


def make_router(max_steps: int) -> Callable[[AgentState], str]:
    def route_after_executor(state: AgentState) -> str:
        if not pending_tool_calls(state["messages"][-1]):
            return "end"
        return "step_limit" if state.get("steps", 0) >= max_steps else "tools"

    return route_after_executor
