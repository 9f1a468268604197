"""The run lifecycle: start a run, execute it, finish its record in every outcome.

``agent_run_start`` checks the caller's daily token budget, resolves the thread and records the
run (with the provider and model it will use). ``agent_run_execute`` runs the graph for it,
yields ``agents.events`` while it runs, and finishes the record whatever happens: on success it
yields ``done``; on a failure it finishes the run, then raises the domain error
(``AgentRunError``); a consumer that stops listening finishes it as cancelled. ``agent_run`` is
both, drained: the synchronous call of the API, the chat, commands and background jobs.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command, StreamMode
from pydantic import ValidationError as PydanticValidationError
from rest_framework.exceptions import ValidationError

from accounts.models import User
from agents import cancellation, metrics, services
from agents.budget import token_usage_release, token_usage_reserve
from agents.checkpointer import get_checkpointer
from agents.directory import http_tool_config, tool_templates, tools_for_user
from agents.errors import (
    AgentRunError,
    DatabaseUnavailable,
    LLMTimeout,
    LLMUnavailable,
    RunCancelled,
    RunNotInterrupted,
    RunTimeout,
    StepLimitExceeded,
    classify_exception,
    describe_llm_failure,
    error_for_record,
)
from agents.eventlog import LoggedEvent, get_event_log
from agents.events import (
    AgentEvent,
    DoneEvent,
    InterruptEvent,
    PlanEvent,
    RunEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    event_payload,
)
from agents.graph.builder import build_graph
from agents.graph.nodes import STEP_LIMIT_ERROR, answer_pending, pending_tool_calls
from agents.graph.state import RunContext
from agents.graph.tools import read_tool_error
from agents.llm import get_chat_model, model_info
from agents.models import AgentRun
from agents.serializers import RunResultSerializer
from agents.tracing import RunTrace, run_trace
from config.logging import bind_log_context, correlation_id

logger = logging.getLogger(__name__)

TOOL_OUTPUT_CHARS = 2000
# Checkpoint once, when the run ends (successfully or not: LangGraph then also saves the writes
# of the failed step), instead of after every step: one checkpoint write a run instead of six.
# A later turn sees the earlier ones, and a failed run's open tool calls are in the saved state
# for the repair. What it gives up: a process killed mid-run loses that turn from the memory
# (its run record stays "running").
DURABILITY = "exit"


# -- the public lifecycle ---------------------------------------------------------------------


def agent_run_start(
    *,
    user: User,
    message: str,
    thread_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
    multitask_strategy: str = AgentRun.Strategy.REJECT,
    background: bool = False,
) -> AgentRun:
    """Record a run that is about to execute, or to wait for its turn.

    Raises ``TokenBudgetExceeded`` (429) when the user's daily token budget is used up (or
    reserved by runs in progress), before any run is written, ``ThreadNotFound`` for another
    user's thread and, with the ``reject`` strategy, ``ThreadBusy`` (409) while another run of
    the thread is pending or running (``agents.control.run_admit``). The run is ``running``
    when the caller executes it now (``agent_run_execute``), ``pending`` when the background
    executor will (``background``, or its thread is busy and the strategy queues it). The
    provider and model are read here, once, and stored on the run: the rest of the run uses
    those.
    """
    from agents.control import run_admit

    reserved = token_usage_reserve(user=user)  # the budget's reservation, settled at the finish
    info = model_info()
    try:
        with transaction.atomic():  # the thread, the run and the thread's activity: one commit
            thread = services.thread_resolve_for_run(
                user=user, thread_id=thread_id, first_message=message
            )
            run = run_admit(  # the thread's lock: one decision at a time, across processes
                user=user,
                thread=thread,
                multitask_strategy=multitask_strategy,
                background=background,
                message=message,
                metadata=metadata or {},
                provider=info.provider,
                model=info.model,
                reserved_tokens=reserved,
            )
    except BaseException:
        token_usage_release(user=user, tokens=reserved)  # the run never started
        raise
    _connection_release()
    return run


def agent_run_resume_start(
    *,
    run: AgentRun,
    decision: str,
    args: dict[str, Any] | None = None,
    tool_call_id: str | None = None,
    comment: str = "",
    background: bool = False,
) -> AgentRun:
    """Record the run that continues interrupted ``run`` with a person's decision on its
    pending calls: ``approve`` runs them, ``edit`` runs the call with ``args`` (checked against
    the tool's schema: ``ValidationError``, 400), ``reject`` answers it with the refusal and
    ``comment``. ``RunNotInterrupted`` (409) when ``run`` is not waiting for a decision: not
    interrupted, resumed already, or expired (``AGENT_APPROVAL_TTL_HOURS``: then closed as
    rejected). The new run points back at ``run`` (``resumed_from``) and executes like any."""
    from agents.control import approval_expire_if_due, run_admit_resume

    run = approval_expire_if_due(run)
    if run.status == AgentRun.Status.INTERRUPTED and run.decision == AgentRun.Decision.EXPIRED:
        raise RunNotInterrupted("The approval expired: the calls were rejected.")
    if not run.awaiting_decision:
        raise RunNotInterrupted()
    resume: dict[str, Any] = {"decision": decision, "comment": comment}
    if decision == "edit":
        call = _edited_call(run, args=args or {}, tool_call_id=tool_call_id)
        resume.update(args=args or {}, tool_call_id=call["id"])
    reserved = token_usage_reserve(user=run.user)
    info = model_info()
    try:
        with transaction.atomic():
            resumed = run_admit_resume(
                interrupted=run,
                resume=resume,
                background=background,
                user=run.user,
                message=run.input,
                metadata=run.metadata,
                provider=info.provider,
                model=info.model,
                reserved_tokens=reserved,
            )
    except BaseException:
        token_usage_release(user=run.user, tokens=reserved)
        raise
    _connection_release()
    return resumed


def _edited_call(run: AgentRun, *, args: dict[str, Any], tool_call_id: str | None) -> Any:
    """The pending call an ``edit`` changes, its new ``args`` valid for the tool's schema."""
    calls = list((run.interrupt or {}).get("tool_calls") or [])
    if tool_call_id is not None:
        calls = [call for call in calls if str(call.get("id")) == tool_call_id]
        if not calls:
            raise ValidationError({"tool_call_id": ["No pending call has this id."]})
    elif len(calls) != 1:
        raise ValidationError({"tool_call_id": ["Several calls wait: name the one to edit."]})
    call = calls[0]
    tools = {tool.name: tool for tool in tool_templates(http_tool_config())}
    tool = tools.get(str(call.get("name")))
    schema = getattr(tool, "args_schema", None)
    if schema is not None and hasattr(schema, "model_validate"):
        try:
            schema.model_validate(args)
        except PydanticValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors()
            ]
            raise ValidationError({"args": problems}) from None
    return call


def agent_run_execute(
    *,
    run: AgentRun,
    tokens: bool = False,
    cancel: threading.Event | None = None,
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
) -> Iterator[AgentEvent]:
    """Run the graph for a started run, yield its events, and finish its record.

    ``tokens`` streams the final answer as ``token`` events. Setting ``cancel`` (the client went
    away), or a cancel of the run from anywhere (``agents.cancellation``), aborts the LLM request
    in flight; the run is recorded as cancelled and ``RunCancelled`` raised. Any other failure
    is recorded, the thread repaired, and the ``AgentRunError`` raised. Closing the generator
    early records the run as cancelled. Each run is one Langfuse trace
    (when traced), counted in the Prometheus metrics and logged with its ids.

    ``model`` and ``checkpointer`` replace the configured ones: for tests and embedding.
    """
    cancel = cancel or threading.Event()
    execution = _execution_prepare(run=run, tokens=tokens, cancel=cancel)
    failure: AgentRunError | None = None
    with cancellation.cancellable(str(run.id), cancel), _traced(execution) as trace:
        metrics.run_started()
        try:
            execution.graph = _graph_for(model=model, checkpointer=checkpointer)
            execution.context = RunContext(tools=tools_for_user(user=run.user))
            _connection_release()
            yield RunEvent(
                run_id=str(run.id), thread_id=str(run.thread_id), trace_id=trace.trace_id
            )
            yield from _graph_stream(execution)
            _step_limit_check(execution)
        except GeneratorExit:
            _finish_disconnected(execution, trace)
            raise
        except Exception as exc:
            failure = _finish_failed(execution, trace, exc)
        else:
            paused = execution.state.interrupt
            if paused is not None:  # approvals: waiting for a person's decision
                trace.set_output(output=json.dumps({"interrupt": paused}, default=str))
                _finish(
                    execution,
                    status=AgentRun.Status.INTERRUPTED,
                    metric_status="interrupted",
                    interrupt=paused,
                )
                _thread_hand_on(run)  # enqueued runs still wait for the decision
            else:
                trace.set_output(output=execution.state.response)
                _finish(execution, status=AgentRun.Status.SUCCESS, metric_status="completed")
                _thread_hand_on(run)
    if failure is not None:
        raise failure
    if execution.state.interrupt is not None:
        yield InterruptEvent(tool_calls=list(execution.state.interrupt.get("tool_calls") or []))
        return
    yield DoneEvent(run=run)


def agent_run(
    *,
    user: User,
    message: str,
    thread_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
    multitask_strategy: str = AgentRun.Strategy.REJECT,
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
) -> AgentRun:
    """Start and execute a run to its end: the finished ``AgentRun``, or the domain error raised.

    A run queued behind a busy thread (``enqueue``, ``interrupt``, ``rollback``) executes in the
    background when its turn comes; this waits for it. ``model`` and ``checkpointer`` replace
    the configured ones: for tests and embedding.
    """
    from agents.control import run_wait

    run = agent_run_start(
        user=user,
        message=message,
        thread_id=thread_id,
        metadata=metadata,
        multitask_strategy=multitask_strategy,
    )
    if run.status == AgentRun.Status.PENDING:
        run = run_wait(run=run, timeout=float(settings.AGENT_RUN_STALE_AFTER_SECONDS))
        return run_outcome(run)
    for _event in agent_run_events(run=run, model=model, checkpointer=checkpointer):
        pass  # execute finishes ``run`` in place, or raises
    return run


def run_outcome(run: AgentRun) -> AgentRun:
    """A finished run, or the domain error it ended with (what ``POST /agent/run`` answers)."""
    if run.status == AgentRun.Status.ERROR:
        raise error_for_record(
            error=run.error,
            extra={
                "status": "error",
                "run_id": str(run.id),
                "thread_id": str(run.thread_id),
                "trace_id": run.trace_id or None,
            },
        )
    return run


def agent_run_events(
    *,
    run: AgentRun,
    tokens: bool = False,
    cancel: threading.Event | None = None,
    model: BaseChatModel | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
) -> Iterator[LoggedEvent]:
    """``agent_run_execute``, each event published to the run's event log (``agents.eventlog``)
    under its id, so that any replica can serve the run to clients that join it.

    A failure is published and yielded as the ``error`` event, then its domain error raised."""
    log = get_event_log()
    run_id = str(run.id)
    try:
        for event in agent_run_execute(
            run=run, tokens=tokens, cancel=cancel, model=model, checkpointer=checkpointer
        ):
            name, data = event_record(event)
            yield LoggedEvent(id=log.publish(run_id, name, data), event=name, data=data)
    except AgentRunError as error:
        data = error_record(error, run_id=run_id)
        yield LoggedEvent(id=log.publish(run_id, "error", data), event="error", data=data)
        raise


def event_record(event: AgentEvent) -> tuple[str, dict[str, Any]]:
    """An event's SSE name and JSON payload; ``done`` carries the body ``POST /agent/run``
    answers."""
    if isinstance(event, DoneEvent):
        return event.event, dict(RunResultSerializer(event.run).data)
    return event.event, event_payload(event)


def error_record(error: AgentRunError, *, run_id: str | None) -> dict[str, Any]:
    """The payload of the ``error`` event of a run that raised its domain error."""
    return {"detail": error.detail, "code": error.code, "run_id": error.extra.get("run_id", run_id)}


def _connection_release() -> None:
    """Hand this thread's database connection back to Django's pool while the run waits on the
    model: a run holds it for milliseconds of queries, not for seconds of LLM calls, so that a
    pool of ten serves many more runs in flight. The next query takes one again. Not inside a
    transaction (the caller's, or a test's), and not without a pool (closing would reconnect)."""
    connection = connections["default"]
    if connection.in_atomic_block or not (connection.settings_dict.get("OPTIONS") or {}).get(
        "pool"
    ):
        return
    connection.close()


# -- what a run learns from the graph ---------------------------------------------------------


@dataclass
class _RunState:
    """What the run learns from the graph's stream, turned into the run record at the end."""

    model: str
    plan: str = ""
    response: str = ""
    error: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    interrupt: dict[str, Any] | None = None  # the calls waiting for approval, when it paused
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def awaiting(self, records: list[dict[str, Any]]) -> None:
        """A resumed run takes over the calls its interrupted run left waiting."""
        for record in records:
            if record.get("ok") is None:
                copied = dict(record)
                self.tool_calls.append(copied)
                self._pending[str(copied.get("id"))] = copied

    def on_ai(self, message: AIMessage) -> Iterator[ToolCallEvent]:
        self.model = str(message.response_metadata.get("model_name") or self.model)
        for call in pending_tool_calls(message):
            known = self._pending.get(str(call.get("id")))
            if known is not None:  # the same call, its arguments edited by a person
                known["args"] = call.get("args")
                continue
            record = {
                "id": call.get("id"),
                "name": call.get("name"),
                "args": call.get("args"),
                "ok": None,
                "output": None,
                "duration_ms": None,
            }
            self.tool_calls.append(record)
            self._pending[str(call.get("id"))] = record
            yield ToolCallEvent(name=record["name"], args=record["args"])
        if not message.tool_calls and not message.invalid_tool_calls:
            self.response = message.text

    def on_tool(self, message: ToolMessage) -> Iterator[ToolResultEvent]:
        record = self._pending.pop(message.tool_call_id, None)
        if record is None:
            return
        content = message.text
        record["ok"] = message.status != "error"
        record["output"] = content[:TOOL_OUTPUT_CHARS]
        record["duration_ms"] = message.additional_kwargs.get("duration_ms")
        # Kept on the record too, so that a reloaded chat shows what the live one showed.
        record["summary"] = _summary(content)
        metrics.tool_called(tool=str(record["name"]), ok=bool(record["ok"]))
        yield ToolResultEvent(name=record["name"], ok=record["ok"], summary=record["summary"])

    def on_update(self, node: str, update: Any) -> Iterator[AgentEvent]:
        if node == "__interrupt__":  # LangGraph's interrupt(): the tool node waits for approval
            for paused in update or ():
                value = getattr(paused, "value", None)
                if isinstance(value, dict):
                    self.interrupt = value
            return
        update = update or {}
        if node == "planner":
            self.plan = str(update.get("plan") or "")
            yield PlanEvent(plan=self.plan)
        for message in update.get("messages") or []:
            if isinstance(message, AIMessage):
                yield from self.on_ai(message)
            elif isinstance(message, ToolMessage):
                yield from self.on_tool(message)
        if update.get("error"):
            self.error = str(update["error"])


def _summary(content: str, limit: int = 200) -> str:
    """A tool's output in a line: its error, how many results it found, or its text."""
    error = read_tool_error(content)
    if error is not None:
        text = f"error: {error}"
    elif (count := _result_count(content)) is not None:
        text = f"{count} result(s)"
    else:
        text = " ".join(content.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _result_count(content: str) -> Any:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data.get("count") if isinstance(data, dict) else None


def _usage(handler: UsageMetadataCallbackHandler) -> dict[str, int | None]:
    """Token counts summed over every LLM call, as the LLM reported them (None if it didn't)."""
    usages = list(handler.usage_metadata.values())
    if not usages:
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    prompt = sum(int(u.get("input_tokens", 0)) for u in usages)
    completion = sum(int(u.get("output_tokens", 0)) for u in usages)
    total = sum(int(u.get("total_tokens", 0)) for u in usages)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class _StopPoints(BaseCallbackHandler):
    """Where a run can be stopped: when an LLM call or a tool starts, and at every streamed
    token. A subclass's ``_check`` raises the domain error that stops it."""

    raise_error = True

    def _check(self) -> None:
        raise NotImplementedError

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()


class _Cancellation(_StopPoints):
    """Aborts LLM calls once ``event`` is set: raising in a streaming callback closes the HTTP
    response, so the provider stops generating (and billing) for a client that left."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def _check(self) -> None:
        if self.event.is_set():
            raise RunCancelled()


class _Deadline(_StopPoints):
    """The run's overall deadline (``AGENT_RUN_TIMEOUT_SECONDS``): checked when an LLM call or
    a tool starts and on every streamed token, so a run ends at most one LLM request (bounded
    by ``LLM_TIMEOUT_SECONDS``) or one tool call past it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RunTimeout(
                f"The run did not finish within its {self.seconds:g} seconds and was stopped."
            )


def thread_repair_for_run(*, run: AgentRun, reason: str | None = None, code: str = "") -> None:
    """Answer the tool calls ``run`` left open in its thread's memory, as a failed run's own
    finish does: for runs ended from outside (``agents.sweeper``; approvals closed unanswered,
    with their ``reason`` and ``code``)."""
    execution = _execution_prepare(run=run, tokens=False, cancel=None)
    execution.graph = _graph_for(model=None, checkpointer=None)
    _thread_repair(execution, reason=reason, code=code or "not_executed")


def thread_rollback_for_run(*, run: AgentRun) -> None:
    """Remove ``run``'s turn from its thread's memory (a rolled-back interrupted run)."""
    execution = _execution_prepare(run=run, tokens=False, cancel=None)
    execution.graph = _graph_for(model=None, checkpointer=None)
    _thread_rollback(execution)


# -- the steps of an execution ----------------------------------------------------------------


@dataclass
class _Execution:
    """What one execution of a run keeps track of, from before the graph starts to the end."""

    run: AgentRun
    config: RunnableConfig
    callbacks: list[BaseCallbackHandler]  # ours; the trace's are added when it starts
    graph_input: dict[str, Any]
    modes: list[StreamMode]
    usage: UsageMetadataCallbackHandler
    state: _RunState
    cancel: threading.Event | None
    graph: Any = None  # the compiled LangGraph graph, once built
    context: RunContext | None = None  # the caller's tools, for the graph
    started: float = field(default_factory=time.perf_counter)
    trace_id: str = ""


def _execution_prepare(
    *, run: AgentRun, tokens: bool, cancel: threading.Event | None
) -> _Execution:
    """The graph's config (thread, callbacks, limits) and input for ``run``."""
    usage = UsageMetadataCallbackHandler()
    callbacks: list[BaseCallbackHandler] = [usage, metrics.LLMTimingCallback()]
    if cancel is not None:
        callbacks.append(_Cancellation(cancel))
    if settings.AGENT_RUN_TIMEOUT_SECONDS > 0:  # reliability: the run's overall deadline
        callbacks.append(_Deadline(settings.AGENT_RUN_TIMEOUT_SECONDS))
    config: RunnableConfig = {
        "configurable": {"thread_id": str(run.thread_id)},
        "callbacks": callbacks,
        "recursion_limit": settings.AGENT_MAX_STEPS * 2 + 10,
        "run_name": "agent_graph",
        "metadata": {"run_id": str(run.id), "user_id": str(run.user_id)},
    }
    graph_input: Any = {
        # Its id marks where the run's turn starts in the thread's memory (a rollback's cut).
        "messages": [HumanMessage(content=run.input, id=_turn_id(run))],
        "user_id": str(run.user_id),
        "plan": None,
        "steps": 0,
        "error": None,
    }
    state = _RunState(model=run.model)
    if run.resume is not None and run.resumed_from_id is not None:  # approvals: continue the
        graph_input = Command(resume=run.resume)  # interrupted run with the decision
        previous = AgentRun.objects.filter(pk=run.resumed_from_id).values("tool_calls", "plan")
        for row in previous[:1]:
            state.awaiting(list(row["tool_calls"] or []))
            state.plan = str(row["plan"] or "")
    return _Execution(
        run=run,
        config=config,
        callbacks=callbacks,
        graph_input=graph_input,
        modes=["updates", "messages"] if tokens else ["updates"],
        usage=usage,
        state=state,
        cancel=cancel,
    )


_graphs_lock = threading.Lock()
_graphs: dict[tuple[Any, ...], tuple[BaseChatModel, BaseCheckpointSaver, Any]] = {}
_GRAPHS_KEPT = 4


def _graph_for(*, model: BaseChatModel | None, checkpointer: BaseCheckpointSaver | None) -> Any:
    """The agent's graph, compiled once per process for a model, checkpointer and tool set.

    Compiling (and binding the tool schemas to the model) costs milliseconds; a run brings its
    caller's tools in its ``RunContext`` instead. Rebuilt when the settings it depends on change
    (tests); a few are kept, for callers that pass their own model or checkpointer.
    """
    model = model or get_chat_model()
    checkpointer = checkpointer or get_checkpointer()
    http = http_tool_config()
    max_steps, max_history = settings.AGENT_MAX_STEPS, settings.AGENT_MAX_HISTORY_MESSAGES
    approval = approval_tools()
    key = (id(model), id(checkpointer), http, max_steps, max_history, approval)
    with _graphs_lock:
        entry = _graphs.get(key)
        if entry is not None and entry[0] is model and entry[1] is checkpointer:
            return entry[2]
    graph = build_graph(
        model=model,
        tools=tool_templates(http),
        checkpointer=checkpointer,
        max_steps=max_steps,
        max_history_messages=max_history,
        approval_tools=approval,
    )
    with _graphs_lock:
        while len(_graphs) >= _GRAPHS_KEPT:
            del _graphs[next(iter(_graphs))]
        _graphs[key] = (model, checkpointer, graph)
    return graph


def approval_tools() -> frozenset[str]:
    """The tools whose calls wait for a person's approval (``AGENT_APPROVAL_REQUIRED_TOOLS``)."""
    return frozenset(
        name.strip() for name in settings.AGENT_APPROVAL_REQUIRED_TOOLS if name.strip()
    )


@contextmanager
def _traced(execution: _Execution) -> Iterator[RunTrace]:
    """The run's log context and Langfuse trace, around the whole execution."""
    run = execution.run
    with (
        bind_log_context(user_id=run.user_id, run_id=run.id, thread_id=run.thread_id),
        run_trace(
            run_id=run.id,
            user_id=run.user_id,
            thread_id=run.thread_id,
            model=run.model,
            metadata=_trace_metadata(run),
            correlation_id=correlation_id(),
            input=run.input,
        ) as trace,
        bind_log_context(trace_id=trace.trace_id),
    ):
        execution.config["callbacks"] = [*execution.callbacks, *trace.callbacks]
        execution.trace_id = trace.trace_id or ""
        yield trace


def _trace_metadata(run: AgentRun) -> dict[str, Any]:
    """The run's metadata on its trace, and for a resumed run the decision it carries out."""
    if run.resume is None:
        return dict(run.metadata or {})
    return {
        **(run.metadata or {}),
        "approval_decision": run.resume.get("decision"),
        "approval_comment": run.resume.get("comment") or None,
        "resumed_from": str(run.resumed_from_id),
    }


def _graph_stream(execution: _Execution) -> Iterator[AgentEvent]:
    """Stream the graph, as events. Closed early, it closes LangGraph's stream first: that waits
    for the pending checkpoint writes, so a repair afterwards sees every open tool call."""
    state = execution.state
    stream = execution.graph.stream(
        execution.graph_input,
        execution.config,
        context=execution.context,
        stream_mode=execution.modes,
        durability=DURABILITY,
    )
    try:
        for mode, chunk in stream:
            if mode == "messages":
                piece, meta = chunk
                if (
                    meta.get("langgraph_node") == "executor"
                    and isinstance(piece, AIMessageChunk)
                    and piece.text
                ):
                    yield TokenEvent(text=piece.text)
                continue
            for node, update in (chunk or {}).items():
                yield from state.on_update(node, update)
    finally:
        stream.close()


def _step_limit_check(execution: _Execution) -> None:
    if execution.state.error == STEP_LIMIT_ERROR:
        raise StepLimitExceeded(
            f"The agent reached its step limit ({settings.AGENT_MAX_STEPS} steps) "
            "before it could answer."
        )


def _finish_disconnected(execution: _Execution, trace: RunTrace) -> None:
    """The consumer went away (a client disconnected): stop, and say so in the record."""
    stopped_by = cancellation.stopped_by(str(execution.run.id))
    reason = f"cancelled: {cancellation.REASONS[stopped_by]}"
    trace.set_output(error=reason)
    _finish(execution, status=AgentRun.Status.ERROR, metric_status="failed", error=reason)
    if stopped_by == "rollback":
        _thread_rollback(execution)
    else:
        _thread_repair(execution)
    _thread_hand_on(execution.run)  # the memory is whole again: the next run may read it


def _finish_failed(execution: _Execution, trace: RunTrace, exc: Exception) -> AgentRunError:
    """Record a failed run, repair its thread; the domain error to raise, with the run's ids."""
    run, cancel = execution.run, execution.cancel
    cancelled = cancel is not None and cancel.is_set()
    stopped_by = cancellation.stopped_by(str(run.id)) if cancelled else ""
    stopped = cancellation.REASONS.get(stopped_by, "")
    error = (
        RunCancelled(stopped[:1].upper() + stopped[1:] + ".") if cancelled else _domain_error(exc)
    )
    described = not cancelled and isinstance(error, LLMUnavailable | LLMTimeout)
    if described and error is not exc:
        # Name the provider, model and kind of failure; never the provider's own text.
        error = type(error)(describe_llm_failure(exc, provider=run.provider, model=run.model))
    detail = f"{error.detail} ({type(exc).__name__})" if described else str(exc)
    logger.warning("Agent run %s failed: %s", run.id, detail)
    reason = (
        f"cancelled: {stopped}"
        if cancelled
        else f"{error.code}: {error.detail if described else exc}"
    )
    trace.set_output(error=reason)
    _finish(
        execution,
        status=AgentRun.Status.ERROR,
        metric_status="timeout" if isinstance(error, LLMTimeout | RunTimeout) else "failed",
        error=reason[:4000],
    )
    if stopped_by == "rollback":
        _thread_rollback(execution)
    else:
        _thread_repair(execution)
    _thread_hand_on(run)  # the memory is whole again: the next run may read it
    error.extra = {
        "status": "error",
        "run_id": str(run.id),
        "thread_id": str(run.thread_id),
        "trace_id": trace.trace_id,
    }
    return error


def _finish(
    execution: _Execution,
    *,
    status: str,
    metric_status: str,
    error: str | None = None,
    interrupt: dict[str, Any] | None = None,
) -> AgentRun:
    """Count, record and log how the run ended. The caller hands the thread to its next run
    (``_thread_hand_on``) once the thread's memory is final (repaired or rolled back)."""
    state, started = execution.state, execution.started
    counts = _usage(execution.usage)
    model = state.model or execution.run.model
    # Counted first: a failing database write must not leave the gauge one too high.
    metrics.run_finished(
        status=metric_status,
        duration_s=time.perf_counter() - started,
        prompt_tokens=counts["prompt_tokens"],
        completion_tokens=counts["completion_tokens"],
        model=model,
    )
    extra: dict[str, Any] = {"error": error} if error is not None else {}
    if interrupt is not None:
        extra["interrupt"] = interrupt
    # reliability: retried on a dropped connection, tokens settled, a deleted run detected
    finished = services.run_finish_recorded(
        run=execution.run,
        status=status,
        plan=state.plan,
        response=state.response,
        model=model,
        tool_calls=state.tool_calls,
        latency_ms=int((time.perf_counter() - started) * 1000),
        trace_id=execution.trace_id,
        **counts,
        **extra,
    )
    _log_finished(finished)
    return finished


def _thread_hand_on(run: AgentRun) -> None:
    """The thread is free: its next pending run may start (``agents.control``), at once and in
    any process. Called once the run's turn in the thread's memory is final (rolled back, its
    open tool calls answered): a run started earlier would read the memory before that."""
    from agents.control import run_dispatch_next

    try:
        run_dispatch_next(thread_id=run.thread_id)
    except Exception:  # the sweeper starts queued runs whose thread is free
        logger.exception("Could not hand thread %s to its next run", run.thread_id)


def _log_finished(run: AgentRun) -> None:
    """One line per run: what a person searching the logs for a request id wants."""
    logger.info(
        "agent_run %s in %s ms",
        run.status,
        run.latency_ms,
        extra={
            "event": "agent_run",
            "status": run.status,
            "latency_ms": run.latency_ms,
            "model": run.model,
            "total_tokens": run.total_tokens,
            "tool_calls": len(run.tool_calls),
            "error": run.error[:200] if run.error else None,
        },
    )


def _domain_error(exc: Exception) -> AgentRunError:
    if isinstance(exc, AgentRunError):
        return exc
    if isinstance(exc, DatabaseError):  # reliability: a dropped connection is a 503, no crash
        return DatabaseUnavailable()
    # The checkpointer's own drivers: no connection within its pool's timeout, a locked file.
    driver_errors = [sys.modules[name].OperationalError for name in ("psycopg", "sqlite3")
                     if name in sys.modules]  # fmt: skip
    if driver_errors and isinstance(exc, tuple(driver_errors)):
        logger.warning("The checkpointer's database failed: %s: %s", type(exc).__name__, exc)
        return DatabaseUnavailable()
    error_class = classify_exception(exc)
    if error_class is AgentRunError:
        logger.exception("Agent run crashed", exc_info=exc)
    return error_class()


def _turn_id(run: AgentRun) -> str:
    return f"run-{run.id}"


def _thread_rollback(execution: _Execution) -> None:
    """Remove the run's turn from its thread's memory (the ``rollback`` strategy): its message
    and everything after it, as if it had never been sent."""
    graph, config = execution.graph, execution.config
    if graph is None:
        return
    try:
        messages = graph.get_state(config).values.get("messages") or []
        ids = [message.id for message in messages]
        start = ids.index(_turn_id(execution.run)) if _turn_id(execution.run) in ids else None
        if start is None:
            return  # the run never reached the thread
        removals = [RemoveMessage(id=message_id) for message_id in ids[start:] if message_id]
        graph.update_state(config, {"messages": removals}, as_node="step_limit")
    except Exception:  # best effort, as the repair; the run is already recorded
        logger.exception("Could not roll back thread %s", config.get("configurable"))


def _thread_repair(
    execution: _Execution, *, reason: str | None = None, code: str = "not_executed"
) -> None:
    """Answer tool calls a failed run left open, so that the thread's next turn works."""
    graph, config = execution.graph, execution.config
    if graph is None:  # it failed to build: the run never reached the thread
        return
    try:
        snapshot = graph.get_state(config)
        messages = snapshot.values.get("messages") or []
        if messages and pending_tool_calls(messages[-1]):
            reason = reason or "not executed: the run was stopped before this tool ran"
            graph.update_state(
                config,
                {"messages": answer_pending(messages[-1], reason, code=code)},
                as_node="step_limit",
            )
    except Exception:  # repairing is best effort; the run is already recorded
        logger.exception("Could not repair thread %s", config.get("configurable"))
