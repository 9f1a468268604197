"""Server-Sent Events for agent runs, served from an async iterator so that ASGI streams them.

The graph and the ORM are synchronous, so the run executes on a worker thread and hands its
events to the response through an ``asyncio.Queue``. If the client disconnects, the ASGI server
cancels the response iterator; that sets the run's cancel event, which aborts the LLM request in
flight and lets ``agents.runner.agent_run_execute`` record the run as cancelled.

Events become SSE text here: ``done`` carries the output serializer's body of the finished run,
and a domain error the run raised becomes the ``error`` event ``{detail, code, run_id}``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connections

from agents.errors import AgentRunError
from agents.events import AgentEvent, DoneEvent, event_payload
from agents.serializers import RunResultSerializer

logger = logging.getLogger(__name__)

_END = object()


def sse(event: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False, default=str)
    return f"event: {event}\ndata: {payload}\n\n"


def event_sse(event: AgentEvent) -> str:
    """A run's event as SSE text; ``done`` is the body ``POST /agent/run`` answers."""
    if isinstance(event, DoneEvent):
        return sse(event.event, dict(RunResultSerializer(event.run).data))
    return sse(event.event, event_payload(event))


def error_sse(error: AgentRunError) -> str:
    """The ``error`` event of a run that raised its domain error."""
    return sse(
        "error", {"detail": error.detail, "code": error.code, "run_id": error.extra.get("run_id")}
    )


async def stream_events(
    produce: Callable[[threading.Event], Iterator[AgentEvent]],
    *,
    run_id: str | None = None,
    heartbeat_seconds: float | None = None,
) -> AsyncIterator[str]:
    """Run ``produce(cancel)`` on a thread; yield its events as SSE text, with heartbeats.

    ``run_id`` names the run in the ``error`` event even when the failure is not the run's own."""
    heartbeat = heartbeat_seconds or settings.AGENT_STREAM_HEARTBEAT_SECONDS
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            for event in produce(cancel):
                put(event_sse(event))
        except AgentRunError as error:  # the run failed, and is recorded as failed
            put(error_sse(error))
        except Exception:  # a bug outside the run's own handling: a last resort
            logger.exception("Agent stream worker failed")
            failure = {"detail": "The agent failed.", "code": "agent_error", "run_id": run_id}
            put(sse("error", failure))
        finally:
            connections.close_all()  # this thread's connections die with it
            put(_END)

    # The worker carries the request's log context (correlation id) with it.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name="agent-stream", daemon=True)
    worker.start()
    try:
        yield ": stream open\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if item is _END:
                break
            yield item
    finally:
        # Normal end, or the client went away (the server cancelled this iterator).
        cancel.set()
