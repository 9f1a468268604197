"""Server-Sent Events for agent runs, served from an async iterator so that ASGI streams them.

The graph and the ORM are synchronous, so the run executes on a worker thread and hands its
events to the response through an ``asyncio.Queue``. If the client disconnects, the ASGI server
cancels the response iterator; that sets the run's cancel event, which aborts the LLM request in
flight and lets ``agents.runner.agent_run_execute`` record the run as cancelled.

Events become SSE text here, each with its ``id:`` in the run's event log (``agents.eventlog``):
``done`` carries the output serializer's body of the finished run, and a domain error the run
raised is the ``error`` event ``{detail, code, run_id}``. ``follow_run`` serves a join
(``GET /agent/runs/{id}/stream``) from that log, on any replica: from the start or after a
``Last-Event-ID``, then live.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from agents.errors import AgentRunError
from agents.eventlog import TERMINAL_EVENTS, EventLogUnavailable, LoggedEvent, get_event_log
from agents.runner import error_record
from agents.serializers import RunResultSerializer

logger = logging.getLogger(__name__)

_END = object()


def sse(event: str, data: dict[str, Any], *, event_id: str | None = None) -> str:
    payload = json.dumps(data, ensure_ascii=False, default=str)
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {payload}\n\n"


def logged_sse(event: LoggedEvent) -> str:
    """A run's event as SSE text, with its id in the run's event log (a client that reconnects
    sends the last one it read as ``Last-Event-ID``)."""
    return sse(event.event, event.data, event_id=event.id)


async def stream_events(
    produce: Callable[[threading.Event], Iterator[LoggedEvent]],
    *,
    run_id: str | None = None,
    heartbeat_seconds: float | None = None,
) -> AsyncIterator[str]:
    """Run ``produce(cancel)`` on a thread; yield its events as SSE text, with heartbeats.

    ``produce`` is ``agents.runner.agent_run_events``: the run's own failure arrives as its
    ``error`` event. ``run_id`` names the run in the ``error`` event of a failure that is not
    the run's own."""
    heartbeat = heartbeat_seconds or settings.AGENT_STREAM_HEARTBEAT_SECONDS
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        ended = False
        try:
            for event in produce(cancel):
                put(logged_sse(event))
                ended = event.event in TERMINAL_EVENTS
        except AgentRunError as error:  # recorded as failed, and sent as its error event
            if not ended:
                put(sse("error", error_record(error, run_id=run_id)))
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


async def follow_run(
    run_id: str,
    *,
    after: str | None,
    cancel_on_disconnect: bool = False,
    heartbeat_seconds: float | None = None,
) -> AsyncIterator[str]:
    """Join a run's stream: its events after the id ``after`` (None: from the start) from the
    run's event log, then live until its last event (``done``, ``error``, ``interrupt``).

    A run that ended without its last event in the log (swept as abandoned, or its log expired)
    ends the stream with the last event made from its record. ``cancel_on_disconnect``: a
    client that leaves before the end cancels the run (a stream started with
    ``on_disconnect=cancel`` whose run waits in the background)."""
    heartbeat = heartbeat_seconds or settings.AGENT_STREAM_HEARTBEAT_SECONDS
    log = get_event_log()
    ended = False
    try:
        yield ": stream open\n\n"
        while not ended:
            try:
                events = await log.follow(run_id, after, wait_seconds=heartbeat)
            except EventLogUnavailable as exc:
                logger.warning("Following run %s failed: %s", run_id, exc)
                yield sse("error", {**EVENTS_UNAVAILABLE, "run_id": run_id})
                ended = True
                break
            if not events:
                final = await sync_to_async(_final_event, thread_sensitive=False)(run_id, after)
                if final is None:
                    yield ": heartbeat\n\n"
                    continue
                events = [final]
            for event in events:
                yield logged_sse(event)
                after = event.id
                if event.event in TERMINAL_EVENTS:
                    ended = True
                    break
    finally:
        if cancel_on_disconnect and not ended:
            await sync_to_async(_cancel, thread_sensitive=False)(run_id)


EVENTS_UNAVAILABLE = {
    "detail": "The run's events are unavailable (the event store is down). Try again later.",
    "code": "event_log_unavailable",
}


def _final_event(run_id: str, after: str | None) -> LoggedEvent | None:
    """The last event of a run that has ended, for a log that does not have it; None while the
    run is pending or running."""
    from agents.models import AgentRun

    try:
        run = AgentRun.objects.filter(pk=run_id).first()
        if run is not None and run.status not in AgentRun.FINISHED:
            return None
        late = get_event_log().read(run_id, after)  # its end, published meanwhile
        if late:
            return (
                late[0]
                if len(late) == 1
                else next((event for event in late if event.event in TERMINAL_EVENTS), late[-1])
            )
        next_id = str(int(after or 0) + 1)
        if run is None:
            gone = {"detail": "The run no longer exists.", "code": "not_found", "run_id": run_id}
            return LoggedEvent(id=next_id, event="error", data=gone)
        name, data = final_record(run)
        return LoggedEvent(id=next_id, event=name, data=data)
    finally:
        connections.close_all()


def final_record(run: Any) -> tuple[str, dict[str, Any]]:
    """The last event of a finished run, made from its record."""
    from agents.models import AgentRun
    from agents.runner import run_outcome

    if run.status == AgentRun.Status.SUCCESS:
        return "done", dict(RunResultSerializer(run).data)
    if run.status == AgentRun.Status.INTERRUPTED:
        return "interrupt", {"tool_calls": list((run.interrupt or {}).get("tool_calls") or [])}
    try:
        run_outcome(run)
    except AgentRunError as error:
        return "error", error_record(error, run_id=str(run.id))
    return "done", dict(RunResultSerializer(run).data)


def _cancel(run_id: str) -> None:
    from agents.control import run_cancel
    from agents.errors import RunNotActive
    from agents.models import AgentRun

    try:
        run = AgentRun.objects.filter(pk=run_id).first()
        if run is not None:
            run_cancel(run=run, mode="disconnect")
    except RunNotActive:
        pass
    except Exception:
        logger.exception("Cancelling run %s after its client left failed", run_id)
    finally:
        connections.close_all()
