"""Assemble the planner → executor ⇄ tools graph."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.graph.nodes import make_executor, make_planner, make_router, make_tool_node, step_limit
from agents.graph.state import AgentState, RunContext


def build_graph(
    *,
    model: BaseChatModel,
    tools: list[BaseTool],
    checkpointer: BaseCheckpointSaver | None = None,
    max_steps: int = 8,
    max_history_messages: int = 40,
    approval_tools: frozenset[str] = frozenset(),
) -> CompiledStateGraph[Any, RunContext, Any, Any]:
    """planner → executor → (tools → executor)* → END; ``step_limit`` ends a looping agent.

    Compile it once and run it for many callers: ``tools`` give the model its tool schemas, and
    a run passes its caller's own tools (same names) as ``context=RunContext(tools=...)``.
    Calls to ``approval_tools`` wait for a person's decision (``make_tool_node``).
    """
    graph: StateGraph[Any, RunContext] = StateGraph(AgentState, context_schema=RunContext)
    graph.add_node("planner", make_planner(model, [t.name for t in tools], max_history_messages))  # type: ignore[call-overload]
    graph.add_node("executor", make_executor(model, tools, max_history_messages))  # type: ignore[call-overload]
    graph.add_node("tools", make_tool_node(tools, approval_tools))  # type: ignore[call-overload]
    graph.add_node("step_limit", step_limit)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "executor")
    graph.add_conditional_edges(
        "executor",
        # Not traced: a span per turn that says "tools" or "end" is noise, and each one would
        # carry the whole conversation as its input.
        RunnableCallable(make_router(max_steps), name="route_after_executor", trace=False),
        {"tools": "tools", "step_limit": "step_limit", "end": END},
    )
    graph.add_edge("tools", "executor")
    graph.add_edge("step_limit", END)
    return graph.compile(checkpointer=checkpointer)
