"""What a run tells its consumer while it executes: one dataclass per event.

``agents.runner.agent_run_execute`` yields them in this order: ``run``, then ``plan``,
``tool_call``/``tool_result`` pairs and ``token`` pieces as the graph produces them, and
``done`` last (or ``interrupt``, when the run paused for a person's approval). A failure is
not an event: the runner raises the domain error, and the SSE layer
(``agents.streaming``) turns it into its ``error`` event. ``event`` is the SSE event name; the
other fields are the event's JSON payload (``done`` carries the finished run, which the output
serializer turns into the body of ``POST /api/v1/agent/run``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from agents.models import AgentRun


@dataclass(frozen=True)
class RunEvent:
    """The run is recorded and the graph is about to start."""

    event: ClassVar[str] = "run"
    run_id: str
    thread_id: str
    trace_id: str | None


@dataclass(frozen=True)
class PlanEvent:
    event: ClassVar[str] = "plan"
    plan: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The model asked for a tool (before it runs)."""

    event: ClassVar[str] = "tool_call"
    name: str | None
    args: Any


@dataclass(frozen=True)
class ToolResultEvent:
    event: ClassVar[str] = "tool_result"
    name: str | None
    ok: bool
    summary: str


@dataclass(frozen=True)
class TokenEvent:
    """A piece of the final answer, as the model writes it (only when tokens are asked for)."""

    event: ClassVar[str] = "token"
    text: str


@dataclass(frozen=True)
class InterruptEvent:
    """The run paused before tools that need a person's approval: its last event."""

    event: ClassVar[str] = "interrupt"
    tool_calls: list[dict[str, Any]]


@dataclass(frozen=True)
class DoneEvent:
    """The run succeeded; ``run`` is the finished record."""

    event: ClassVar[str] = "done"
    run: AgentRun


# Every event but ``done``: what happens while the run is under way.
ProgressEvent = RunEvent | PlanEvent | ToolCallEvent | ToolResultEvent | TokenEvent
AgentEvent = ProgressEvent | InterruptEvent | DoneEvent


def event_payload(event: ProgressEvent | InterruptEvent) -> dict[str, Any]:
    """The JSON payload of every event but ``done`` (whose payload is the output serializer's)."""
    return asdict(event)
