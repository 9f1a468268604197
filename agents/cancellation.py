"""Stopping a run wherever it executes: the cancel signal between processes.

A cancel (``POST /agent/runs/{id}/cancel``, the admin action, a newer run's ``interrupt`` or
``rollback`` strategy) is written on the run (``AgentRun.cancel_requested``). The process that
executes the run holds a ``threading.Event`` for it, which the runner's stop points check at
every model token, model call and tool call (``agents.runner._Cancellation``); this module sets
that event:

- at once, when the cancel is asked in the process that executes the run;
- otherwise within ``AGENT_RUN_CANCEL_POLL_SECONDS``: one watcher thread a process looks up the
  runs it executes that have a cancel written on them (one indexed query a poll, only while the
  process executes runs), so a web replica can stop a run on a Celery worker and back.

``stopped_by`` tells the runner why it stopped: what the run's record says.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

DISCONNECT = "disconnect"  # the client of a stream went away (not written on the run)

REASONS = {
    DISCONNECT: "the client disconnected",
    "cancel": "cancelled on request",
    "interrupt": "interrupted by a newer run on the thread",
    "rollback": "rolled back by a newer run on the thread",
}


class _Registry:
    """The runs this process executes: run id → (its cancel event, why it was set)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, threading.Event] = {}
        self.modes: dict[str, str] = {}
        self.watcher_pid: int | None = None


_registry = _Registry()


@contextmanager
def cancellable(run_id: str, event: threading.Event) -> Iterator[None]:
    """While the block executes run ``run_id``, a cancel of it sets ``event``."""
    with _registry.lock:
        _registry.events[run_id] = event
        _registry.modes.pop(run_id, None)
        start = _registry.watcher_pid != os.getpid()
        if start:
            _registry.watcher_pid = os.getpid()
    if start:
        threading.Thread(target=_watch, name="agent-run-cancel-watcher", daemon=True).start()
    try:
        yield
    finally:
        with _registry.lock:
            _registry.events.pop(run_id, None)
            _registry.modes.pop(run_id, None)


def stopped_by(run_id: str) -> str:
    """Why run ``run_id`` was stopped: a key of ``REASONS`` (a client's disconnect, unless a
    cancel says otherwise)."""
    with _registry.lock:
        mode = _registry.modes.get(run_id, DISCONNECT)
    return mode if mode in REASONS else "cancel"


def stop_here(run_id: str, mode: str) -> bool:
    """Set the cancel event of ``run_id`` if this process executes it; whether it does."""
    with _registry.lock:
        event = _registry.events.get(run_id)
        if event is None:
            return False
        _registry.modes.setdefault(run_id, mode)
    event.set()
    return True


def _watch() -> None:
    """Poll for cancels written on the runs this process executes, for as long as it lives."""
    from agents.models import AgentRun

    while True:
        threading.Event().wait(max(float(settings.AGENT_RUN_CANCEL_POLL_SECONDS), 0.05))
        with _registry.lock:
            ids = list(_registry.events)
        if not ids:
            continue
        try:
            wanted = AgentRun.objects.filter(pk__in=ids).exclude(cancel_requested="")
            for run_id, mode in wanted.values_list("id", "cancel_requested"):
                stop_here(str(run_id), mode)
        except DatabaseError as exc:  # the next poll tries again
            logger.warning("Looking up cancelled runs failed: %s", exc)
        except Exception:
            logger.exception("Looking up cancelled runs failed")
        finally:
            connections.close_all()
