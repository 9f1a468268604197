"""``AgentService``: runs the graph for a user and owns the ``AgentRun`` lifecycle.

``stream_run`` is the one lifecycle: it records the run before the graph starts, yields events
while it runs (``run``, ``plan``, ``tool_call``, ``tool_result``, ``token``, then ``done`` or
``error``) and finishes the run record in every outcome, including a consumer that stops
listening. ``run_agent`` is ``stream_run`` drained: the seed's synchronous call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StreamMode

from accounts.models import User
from agents import metrics, services
from agents.checkpointer import get_checkpointer
from agents.errors import (
    AgentRunError,
    LLMTimeout,
    LLMUnavailable,
    RunCancelled,
    StepLimitExceeded,
    classify_exception,
    describe_llm_failure,
)
from agents.graph.builder import build_graph
from agents.graph.nodes import STEP_LIMIT_ERROR, answer_pending, pending_tool_calls
from agents.llm import get_chat_model, model_info
from agents.models import AgentRun
from agents.tools import get_all_tools
from agents.tracing import run_trace, trace_url
from config.logging import bind_log_context, correlation_id

logger = logging.getLogger(__name__)

TOOL_OUTPUT_CHARS = 2000


@dataclass
class AgentEvent:
    event: str
    data: dict[str, Any]
    exception: AgentRunError | None = None


@dataclass
class _RunState:
    """What the run learns from the graph's stream, turned into the run record at the end."""

    plan: str = ""
    response: str = ""
    model: str = ""
    error: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on_ai(self, message: AIMessage) -> list[AgentEvent]:
        events = []
        self.model = str(message.response_metadata.get("model_name") or self.model)
        for call in pending_tool_calls(message):
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
            events.append(AgentEvent("tool_call", {"name": record["name"], "args": record["args"]}))
        if not message.tool_calls and not message.invalid_tool_calls:
            self.response = message.text
        return events

    def on_tool(self, message: ToolMessage) -> AgentEvent | None:
        record = self._pending.pop(message.tool_call_id, None)
        if record is None:
            return None
        content = message.text
        record["ok"] = message.status != "error"
        record["output"] = content[:TOOL_OUTPUT_CHARS]
        record["duration_ms"] = message.additional_kwargs.get("duration_ms")
        # Kept on the record too, so that a reloaded chat shows what the live one showed.
        record["summary"] = _summary(content)
        metrics.tool_called(tool=str(record["name"]), ok=bool(record["ok"]))
        return AgentEvent(
            "tool_result",
            {"name": record["name"], "ok": record["ok"], "summary": record["summary"]},
        )


def _summary(content: str, limit: int = 200) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        text = f"error: {data['error']}"
    elif isinstance(data, dict) and "count" in data:
        text = f"{data['count']} result(s)"
    else:
        text = " ".join(content.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage(handler: UsageMetadataCallbackHandler) -> dict[str, int | None]:
    """Token counts summed over every LLM call, as the LLM reported them (None if it didn't)."""
    usages = list(handler.usage_metadata.values())
    if not usages:
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    prompt = sum(int(u.get("input_tokens", 0)) for u in usages)
    completion = sum(int(u.get("output_tokens", 0)) for u in usages)
    total = sum(int(u.get("total_tokens", 0)) for u in usages)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class _Cancellation(BaseCallbackHandler):
    """Aborts LLM calls once ``event`` is set: raising in a streaming callback closes the HTTP
    response, so the provider stops generating (and billing) for a client that left."""

    raise_error = True

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def _check(self) -> None:
        if self.event.is_set():
            raise RunCancelled()

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()


class AgentService:
    def __init__(
        self,
        *,
        model: BaseChatModel | None = None,
        checkpointer: BaseCheckpointSaver | None = None,
        tools_factory: Callable[..., list[BaseTool]] = get_all_tools,
    ) -> None:
        self._model = model
        self._checkpointer = checkpointer
        self._tools_factory = tools_factory

    def run_agent(
        self,
        user: User,
        message: str,
        thread_id: uuid.UUID | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the agent to the end; returns the seed's dict or raises an ``AgentRunError``."""
        for event in self.stream_run(user, message, thread_id, metadata):
            if event.event == "done":
                return event.data
            if event.event == "error" and event.exception is not None:
                raise event.exception
        raise AgentRunError("The agent stopped without an answer.")  # pragma: no cover

    def stream_run(
        self,
        user: User,
        message: str,
        thread_id: uuid.UUID | str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        tokens: bool = False,
        cancel: threading.Event | None = None,
    ) -> Iterator[AgentEvent]:
        """``start_run`` then ``execute``: the whole lifecycle as one stream of events."""
        run = self.start_run(user, message, thread_id, metadata)
        yield from self.execute(run, tokens=tokens, cancel=cancel)

    def start_run(
        self,
        user: User,
        message: str,
        thread_id: uuid.UUID | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AgentRun:
        """Resolve the thread (``ThreadNotFound`` for another user's) and record the run."""
        if isinstance(thread_id, str):
            thread_id = uuid.UUID(thread_id)
        info = model_info()
        thread = services.thread_resolve_for_run(
            user=user, thread_id=thread_id, first_message=message
        )
        return services.run_start(
            user=user,
            thread=thread,
            message=message,
            metadata=metadata or {},
            provider=info.provider,
            model=info.model,
        )

    def execute(
        self,
        run: AgentRun,
        *,
        tokens: bool = False,
        cancel: threading.Event | None = None,
    ) -> Iterator[AgentEvent]:
        """Run the graph for a started run and finish its record, whatever happens.

        ``tokens`` streams the final answer's tokens as ``token`` events. Setting ``cancel``
        (the client went away) aborts the LLM request in flight and records the run as error.
        Each run is one Langfuse trace (when tracing is on and the run is sampled), counted in
        the Prometheus metrics, and logged with its ids.
        """
        user, thread, message = run.user, run.thread, run.input
        info = model_info()
        model = self._model or get_chat_model()
        started = time.perf_counter()
        state = _RunState(model=info.model)
        usage = UsageMetadataCallbackHandler()
        graph = build_graph(
            model=model,
            tools=self._tools_factory(user=user),
            checkpointer=self._checkpointer or get_checkpointer(),
            max_steps=settings.AGENT_MAX_STEPS,
            max_history_messages=settings.AGENT_MAX_HISTORY_MESSAGES,
        )
        callbacks: list[BaseCallbackHandler] = [usage, metrics.LLMTimingCallback()]
        if cancel is not None:
            callbacks.append(_Cancellation(cancel))
        config: RunnableConfig = {
            "configurable": {"thread_id": str(thread.id)},
            "callbacks": callbacks,
            "recursion_limit": settings.AGENT_MAX_STEPS * 2 + 10,
            "run_name": "agent_graph",
            "metadata": {"run_id": str(run.id), "user_id": str(user.id)},
        }
        graph_input = {
            "messages": [HumanMessage(content=message)],
            "user_id": str(user.id),
            "plan": None,
            "steps": 0,
            "error": None,
        }
        modes: list[StreamMode] = ["updates", "messages"] if tokens else ["updates"]

        def finish(status: str, metric_status: str, **extra: Any) -> AgentRun:
            counts = _usage(usage)
            # Counted first: a failing database write must not leave the gauge one too high.
            metrics.run_finished(
                status=metric_status,
                duration_s=time.perf_counter() - started,
                prompt_tokens=counts["prompt_tokens"],
                completion_tokens=counts["completion_tokens"],
                model=state.model or info.model,
            )
            finished = services.run_finish(
                run=run,
                status=status,
                plan=state.plan,
                response=state.response,
                model=state.model or info.model,
                tool_calls=state.tool_calls,
                latency_ms=int((time.perf_counter() - started) * 1000),
                **counts,
                **extra,
            )
            # One line per run: what a person searching the logs for a request id wants.
            logger.info(
                "agent_run %s in %s ms",
                finished.status,
                finished.latency_ms,
                extra={
                    "event": "agent_run",
                    "status": finished.status,
                    "latency_ms": finished.latency_ms,
                    "model": finished.model,
                    "total_tokens": finished.total_tokens,
                    "tool_calls": len(finished.tool_calls),
                    "error": finished.error[:200] if finished.error else None,
                },
            )
            return finished

        stream: Any = None  # LangGraph's stream: a generator, closed early on GeneratorExit
        with (
            bind_log_context(user_id=user.id, run_id=run.id, thread_id=thread.id),
            run_trace(
                run_id=run.id,
                user_id=user.id,
                thread_id=thread.id,
                model=info.model,
                metadata=run.metadata,
                correlation_id=correlation_id(),
                input=message,
            ) as trace,
            bind_log_context(trace_id=trace.trace_id),
        ):
            config["callbacks"] = [*callbacks, *trace.callbacks]
            trace_id = trace.trace_id or ""
            metrics.run_started()
            try:
                yield AgentEvent(
                    "run",
                    {
                        "run_id": str(run.id),
                        "thread_id": str(thread.id),
                        "trace_id": trace.trace_id,
                    },
                )
                stream = graph.stream(graph_input, config, stream_mode=modes)
                for mode, chunk in stream:
                    if mode == "messages":
                        piece, meta = chunk
                        if (
                            meta.get("langgraph_node") == "executor"
                            and isinstance(piece, AIMessageChunk)
                            and piece.text
                        ):
                            yield AgentEvent("token", {"text": piece.text})
                        continue
                    for node, update in (chunk or {}).items():
                        yield from self._on_update(node, update or {}, state)
                if state.error == STEP_LIMIT_ERROR:
                    raise StepLimitExceeded(
                        f"The agent reached its step limit ({settings.AGENT_MAX_STEPS} steps) "
                        "before it could answer."
                    )
            except GeneratorExit:
                # Closing LangGraph's stream waits for its pending checkpoint writes; only then
                # does the repair see every tool call the run left open.
                if stream is not None:
                    stream.close()
                # The consumer went away (a client disconnected): stop, and say so in the record.
                reason = "cancelled: the client disconnected"
                trace.set_output(error=reason)
                finish(AgentRun.Status.ERROR, "failed", error=reason, trace_id=trace_id)
                self._repair_thread(graph, config)
                raise
            except Exception as exc:
                cancelled = cancel is not None and cancel.is_set()
                error = RunCancelled() if cancelled else self._domain_error(exc)
                described = not cancelled and isinstance(error, LLMUnavailable | LLMTimeout)
                if described and error is not exc:
                    # Name the provider, model and kind of failure; never the provider's text.
                    error = type(error)(
                        describe_llm_failure(exc, provider=info.provider, model=info.model)
                    )
                logger.warning(
                    "Agent run %s failed: %s",
                    run.id,
                    f"{error.detail} ({type(exc).__name__})" if described else exc,
                )
                reason = (
                    "cancelled: the client disconnected"
                    if cancelled
                    else f"{error.code}: {error.detail if described else exc}"
                )
                trace.set_output(error=reason)
                finish(
                    AgentRun.Status.ERROR,
                    "timeout" if isinstance(error, LLMTimeout) else "failed",
                    error=reason[:4000],
                    trace_id=trace_id,
                )
                self._repair_thread(graph, config)
                error.extra = {
                    "status": "error",
                    "run_id": str(run.id),
                    "thread_id": str(thread.id),
                    "trace_id": trace.trace_id,
                }
                yield AgentEvent(
                    "error",
                    {"detail": error.detail, "code": error.code, "run_id": str(run.id)},
                    exception=error,
                )
                return

            trace.set_output(output=state.response)
            finished = finish(AgentRun.Status.SUCCESS, "completed", trace_id=trace_id)
            yield AgentEvent("done", self.result(finished))

    @staticmethod
    def result(run: AgentRun) -> dict[str, Any]:
        """The seed's response body, plus who answered and what it cost."""
        return {
            "response": run.response,
            "thread_id": str(run.thread_id),
            "trace_id": run.trace_id or None,
            "run_id": str(run.id),
            "latency_ms": run.latency_ms,
            "status": run.status,
            "plan": run.plan or None,
            "provider": run.provider,
            "model": run.model,
            "trace_url": trace_url(run.trace_id or None),
            "usage": {
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "total_tokens": run.total_tokens,
            },
        }

    @staticmethod
    def _on_update(node: str, update: dict[str, Any], state: _RunState) -> Iterator[AgentEvent]:
        if node == "planner":
            state.plan = str(update.get("plan") or "")
            yield AgentEvent("plan", {"plan": state.plan})
        for message in update.get("messages") or []:
            if isinstance(message, AIMessage):
                yield from state.on_ai(message)
            elif isinstance(message, ToolMessage):
                event = state.on_tool(message)
                if event is not None:
                    yield event
        if update.get("error"):
            state.error = str(update["error"])

    @staticmethod
    def _domain_error(exc: Exception) -> AgentRunError:
        if isinstance(exc, AgentRunError):
            return exc
        error_class = classify_exception(exc)
        if error_class is AgentRunError:
            logger.exception("Agent run crashed", exc_info=exc)
        return error_class()

    @staticmethod
    def _repair_thread(graph: Any, config: RunnableConfig) -> None:
        """Answer tool calls a failed run left open, so that the thread's next turn works."""
        try:
            snapshot = graph.get_state(config)
            messages = snapshot.values.get("messages") or []
            if messages and pending_tool_calls(messages[-1]):
                reason = "not executed: the run was stopped before this tool ran"
                graph.update_state(
                    config,
                    {"messages": answer_pending(messages[-1], reason)},
                    as_node="step_limit",
                )
        except Exception:  # repairing is best effort; the run is already recorded
            logger.exception("Could not repair thread %s", config.get("configurable"))


__all__ = ["AgentEvent", "AgentService", "RunCancelled"]
