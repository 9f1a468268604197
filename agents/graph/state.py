"""The agent's state, as the seed defines it, plus per-run bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypedDict

from langchain_core.messages import AnyMessage
from langchain_core.tools import BaseTool
from langgraph.graph.message import add_messages


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    plan: str | None
    user_id: str | None
    # Executor turns taken in the current run; reset by every run's input.
    steps: int
    # Set when the graph stops the run itself (the step limit); None on a normal finish.
    error: str | None


@dataclass(frozen=True)
class RunContext:
    """What one run brings to a graph compiled once per process (LangGraph's runtime context).

    ``tools`` are the caller's own tools (their database scope); the graph was compiled with
    tools of the same names and schemas, which the model sees, but it runs these.
    """

    tools: Sequence[BaseTool] = ()
