"""The per-run event log: what lets any app replica serve a run's Server-Sent Event stream to a
client that joins it (a reconnect with ``Last-Event-ID``, a second tab, a request that lands on
another replica than the one executing the run).

The process that executes a run ``publish``-es every event it streams; the log numbers them
1, 2, 3, ... per run, and that number is the event's SSE ``id``. A client that joins ``read``-s
what it missed, then ``follow``-s (waits for more) until a terminal event (``TERMINAL_EVENTS``).
``get_event_log()`` is the one access point.

Backends: Redis when ``REDIS_URL`` is set (a stream per run, shared by every replica), else the
process's memory (the embedded default, where one process serves everything);
``AGENT_EVENTS_BACKEND`` chooses explicitly.

Retention: a run's log expires ``AGENT_EVENTS_TTL_SECONDS`` after its last event and keeps its
newest ``AGENT_EVENTS_MAX_PER_RUN`` events (Redis trims approximately, in whole stream nodes:
at least that many). A reader whose ``after`` is older than the oldest event kept gets what is
kept: the events in between are gone, and the gap shows in the ids.

Failures: ``publish`` never raises for an unreachable Redis (the run and its live stream go on;
the event is missing from the log, and a rate-limited warning says so), and the id it returns
is still unique: this process's later events of the run continue past it. ``read`` and
``follow`` raise ``EventLogUnavailable``, a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"done", "error", "interrupt"})

# Redis stream ids are two unsigned 64-bit numbers; ours are ``0-<seq>``. Ids above this are
# none this log issued (and would not parse as a stream id once incremented).
MAX_EVENT_ID = 2**63 - 1


@dataclass(frozen=True)
class LoggedEvent:
    id: str  # the SSE id: "1", "2", ... per run, increasing (the producer's sequence)
    event: str  # SSE event name: run, plan, tool_call, tool_result, token, done, error, interrupt
    data: dict[str, Any]


class EventLogUnavailable(ServiceUnavailable):
    """The run event log can't be read (Redis is unreachable): joining a stream is a 503."""

    code = "event_log_unavailable"
    default_detail = "The run's event stream is unavailable right now. Try again later."


class RunEventLog(Protocol):
    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        """Append an event to the run's log; its id (the run's next sequence number)."""
        ...

    def read(self, run_id: str, after: str | None = None) -> list[LoggedEvent]:
        """The run's events after id ``after`` (None: from the start), oldest first."""
        ...

    async def follow(
        self, run_id: str, after: str | None, *, wait_seconds: float
    ) -> list[LoggedEvent]:
        """The events after ``after``; if none yet, waits up to ``wait_seconds`` for some.
        ``[]`` on timeout (the caller sends a heartbeat and calls again)."""
        ...

    def forget(self, run_id: str) -> None:
        """Drop the run's log."""
        ...


_ID_DIGITS = re.compile(r"[0-9]+")


def parse_last_event_id(value: str | None) -> str | None:
    """The ``Last-Event-ID`` header as an id of this log: a positive integer (surrounding
    spaces and leading zeros allowed, normalized away), else None: a malformed header is
    ignored (the client gets the stream from the start), never an error."""
    if value is None:
        return None
    value = value.strip(" \t")
    if not _ID_DIGITS.fullmatch(value):
        return None
    digits = value.lstrip("0")
    # Checked before int(): a huge string is refused without converting it.
    if not digits or len(digits) > len(str(MAX_EVENT_ID)) or int(digits) > MAX_EVENT_ID:
        return None
    return digits


def _after_seq(after: str | None) -> int:
    """``after`` as a sequence number (0: from the start); ValueError if it is no id."""
    if after is None:
        return 0
    if not (_ID_DIGITS.fullmatch(after) and len(after) <= len(str(MAX_EVENT_ID))):
        raise ValueError(f"not an event id: {after!r}")
    seq = int(after)
    if seq > MAX_EVENT_ID:
        raise ValueError(f"not an event id: {after!r}")
    return seq


def _encode(event: str, data: dict[str, Any]) -> str:
    # The name goes on an SSE line of its own: a line break in it would forge other fields.
    if not event or "\n" in event or "\r" in event:
        raise ValueError(f"not an SSE event name: {event!r}")
    if not isinstance(data, dict):
        raise TypeError(f"an event's data is a JSON object, not {type(data).__name__}")
    return json.dumps(data, ensure_ascii=False, default=str)


def _decoded(seq: int | str, event: str, payload: str) -> LoggedEvent:
    return LoggedEvent(id=str(seq), event=event, data=json.loads(payload))


# --- In-process memory ---------------------------------------------------------------------


@dataclass
class _MemoryRun:
    events: deque[tuple[int, str, str]]  # (seq, event, JSON data), oldest first, contiguous
    last_seq: int = 0
    expires_at: float = 0.0


# A follower waiting on its event loop: woken with loop.call_soon_threadsafe(event.set).
_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


def _wake(waiters: Iterable[_Waiter]) -> None:
    for loop, wake in waiters:
        with contextlib.suppress(RuntimeError):  # the follower's loop is closed: nobody waits
            loop.call_soon_threadsafe(wake.set)


class MemoryEventLog:
    """Every run's log in this process (thread-safe). Runs expire ``ttl_seconds`` after their
    last event (evicted as later events are published, so memory stays bounded); each keeps
    its newest ``max_per_run`` events. ``follow`` waits on an ``asyncio.Event`` that a
    producer thread sets through the follower's loop: no polling."""

    def __init__(
        self,
        *,
        max_per_run: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_per_run = max(1, max_per_run)
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # Ordered by expiry: a publish moves its run to the end (the TTL is the same for all).
        self._runs: OrderedDict[str, _MemoryRun] = OrderedDict()
        self._waiters: dict[str, set[_Waiter]] = {}

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        payload = _encode(event, data)
        now = self._clock()
        with self._lock:
            self._evict(now)
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = _MemoryRun(deque(maxlen=self._max_per_run))
            else:
                self._runs.move_to_end(run_id)
            run.last_seq += 1
            seq = run.last_seq
            run.events.append((seq, event, payload))
            run.expires_at = now + self._ttl
            waiters = self._waiters.pop(run_id, set())
        _wake(waiters)
        return str(seq)

    def read(self, run_id: str, after: str | None = None) -> list[LoggedEvent]:
        seq = _after_seq(after)
        with self._lock:
            kept = self._kept_after(run_id, seq)
        return [_decoded(*entry) for entry in kept]

    async def follow(
        self, run_id: str, after: str | None, *, wait_seconds: float
    ) -> list[LoggedEvent]:
        seq = _after_seq(after)
        waiter: _Waiter = (asyncio.get_running_loop(), asyncio.Event())
        # Checking and registering under one lock: a publish in between cannot be missed.
        with self._lock:
            kept = self._kept_after(run_id, seq)
            if kept or wait_seconds <= 0:
                return [_decoded(*entry) for entry in kept]
            self._waiters.setdefault(run_id, set()).add(waiter)
        try:
            async with asyncio.timeout(wait_seconds):
                await waiter[1].wait()
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiting = self._waiters.get(run_id)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[run_id]
        return self.read(run_id, after)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            waiters = self._waiters.pop(run_id, set())
        _wake(waiters)  # they find nothing and return []

    def _kept_after(self, run_id: str, seq: int) -> list[tuple[int, str, str]]:
        run = self._runs.get(run_id)
        if run is None:
            return []
        if run.expires_at <= self._clock():
            del self._runs[run_id]
            return []
        if not run.events:
            return []
        # Sequence numbers are contiguous from the oldest kept one: the position is arithmetic.
        start = max(0, seq - run.events[0][0] + 1)
        return list(itertools.islice(run.events, start, None))

    def _evict(self, now: float) -> None:
        while self._runs:
            run_id, run = next(iter(self._runs.items()))
            if run.expires_at > now:
                break
            del self._runs[run_id]


# --- Redis ---------------------------------------------------------------------------------

# One round trip, atomic: append as ``0-<floor>`` (the id this process would give next), or,
# when the stream is already past it (another process published), as ``0-*``: Redis's next
# sequence number in millisecond 0. Trim and refresh the TTL in the same step.
# KEYS: the stream. ARGV: max length, floor, TTL seconds, event, JSON data.
_PUBLISH_SCRIPT = """
local entry = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. ARGV[2],
                          'event', ARGV[4], 'data', ARGV[5])
if type(entry) == 'table' and entry.err then
    entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-*',
                       'event', ARGV[4], 'data', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return entry
"""

# After a failed publish, publishes skip Redis for a while (a blackholed Redis would otherwise
# stall every event of a run by the connect timeout); the pause doubles while Redis stays down.
_PUBLISH_PAUSE_SECONDS = 1.0
_PUBLISH_PAUSE_MAX_SECONDS = 30.0
_WARN_INTERVAL_SECONDS = 60.0
# Runs whose last id this process remembers (their producers are in this process).
_REMEMBERED_RUNS = 10_000

_REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


@dataclass
class _PublishHealth:
    """Publishing's view of Redis: when to try again, what was dropped, when we last said so."""

    paused_until: float = 0.0
    pause: float = 0.0
    dropped: int = 0
    warned_at: float = field(default=-_WARN_INTERVAL_SECONDS)


def _entry_seq(entry_id: str | bytes) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.rpartition("-")[2])


def _entries(entries: Iterable[Any]) -> list[LoggedEvent]:
    return [
        _decoded(_entry_seq(entry_id), fields["event"], fields["data"])
        for entry_id, fields in entries
    ]


class RedisEventLog:
    """A Redis stream per run, ``<CACHE_KEY_PREFIX>:agent-run-events:<run_id>``, its entries
    ``0-<seq>`` with fields ``event`` and ``data`` (JSON); trimmed to about ``max_per_run``
    and expiring ``ttl_seconds`` after the last publish. Sync commands share one connection
    pool; ``follow`` (XREAD BLOCK) uses a ``redis.asyncio`` client per event loop."""

    def __init__(
        self,
        *,
        url: str,
        key_prefix: str,
        max_per_run: int,
        ttl_seconds: int,
        timeout_seconds: float,
        publish_pause_seconds: float = _PUBLISH_PAUSE_SECONDS,
    ) -> None:
        self._url = url
        self._key_prefix = key_prefix
        self._max_per_run = max(1, max_per_run)
        self._ttl = max(1, int(ttl_seconds))
        self._timeout = timeout_seconds
        self._publish_pause = publish_pause_seconds
        # One retry: a pooled connection the server closed is reconnected at once; no backoff,
        # so an outage costs a publish at most two connect timeouts.
        self._client = redis.Redis(
            connection_pool=redis.ConnectionPool.from_url(
                url,
                socket_connect_timeout=timeout_seconds,
                socket_timeout=timeout_seconds,
                retry=Retry(NoBackoff(), 1),
                decode_responses=True,
            )
        )
        self._publish_script = self._client.register_script(_PUBLISH_SCRIPT)
        self._lock = threading.Lock()
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._health = _PublishHealth()
        self._async_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}

    def key(self, run_id: str) -> str:
        return f"{self._key_prefix}:agent-run-events:{run_id}"

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        payload = _encode(event, data)
        now = time.monotonic()
        with self._lock:
            floor = self._last_seq.get(run_id, 0) + 1
            paused = now < self._health.paused_until
        if not paused:
            try:
                entry_id = self._publish_script(
                    keys=[self.key(run_id)],
                    args=[self._max_per_run, floor, self._ttl, event, payload],
                )
            except _REDIS_ERRORS as error:
                self._publish_failed(error, now)
            else:
                seq = _entry_seq(entry_id)
                self._published(run_id, seq, terminal=event in TERMINAL_EVENTS)
                return str(seq)
        # Not logged; the id is still this run's next one here, and the next events that are
        # logged continue past it, so no id is ever given to two events.
        with self._lock:
            seq = self._last_seq.get(run_id, 0) + 1
            self._remember(run_id, seq)
            self._health.dropped += 1
        return str(seq)

    def read(self, run_id: str, after: str | None = None) -> list[LoggedEvent]:
        seq = _after_seq(after)
        try:
            entries = self._client.xrange(self.key(run_id), min=f"(0-{seq}" if seq else "-")
        except _REDIS_ERRORS as error:
            raise EventLogUnavailable() from error
        return _entries(entries or [])

    async def follow(
        self, run_id: str, after: str | None, *, wait_seconds: float
    ) -> list[LoggedEvent]:
        seq = _after_seq(after)
        key = self.key(run_id)
        # XREAD answers at once when there are entries past the id; BLOCK waits for one
        # (also for a stream that does not exist yet). BLOCK 0 would wait forever: no BLOCK.
        block = max(1, round(wait_seconds * 1000)) if wait_seconds > 0 else None
        try:
            client = self._async_client()
            # The async client has no socket timeout (a blocked read is silent for the whole
            # wait): this bounds the command instead.
            async with asyncio.timeout(max(wait_seconds, 0.0) + self._timeout):
                response = await client.xread({key: f"0-{seq}"}, block=block)
        except _REDIS_ERRORS as error:  # OSError covers the TimeoutError of the bound
            raise EventLogUnavailable() from error
        # RESP2: [[key, entries]]; RESP3: {key: [entries]}.
        streams = response.values() if isinstance(response, dict) else (e for _, e in response)
        return [event for entries in streams for event in _entries(entries)]

    def forget(self, run_id: str) -> None:
        """Best effort: with Redis down the log stays until its TTL (a thread's deletion must
        not fail for it)."""
        with self._lock:
            self._last_seq.pop(run_id, None)
        try:
            self._client.delete(self.key(run_id))
        except _REDIS_ERRORS as error:
            logger.warning("Could not delete run %s's event log: %s", run_id, error)

    async def aclose(self) -> None:
        """Close the running loop's async connections (before the loop closes)."""
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _async_client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[closed]
            client = self._async_clients.get(loop)
            if client is None:
                client = self._async_clients[loop] = aioredis.Redis.from_url(
                    self._url,
                    socket_connect_timeout=self._timeout,
                    socket_timeout=None,
                    retry=AsyncRetry(NoBackoff(), 1),
                    decode_responses=True,
                )
        return client

    def _remember(self, run_id: str, seq: int) -> None:
        """Under the lock: ``seq`` is the last id this process gave the run."""
        self._last_seq[run_id] = max(seq, self._last_seq.get(run_id, 0))
        self._last_seq.move_to_end(run_id)
        while len(self._last_seq) > _REMEMBERED_RUNS:
            self._last_seq.popitem(last=False)

    def _published(self, run_id: str, seq: int, *, terminal: bool) -> None:
        with self._lock:
            if terminal:  # the run is over: nothing more to continue from
                self._last_seq.pop(run_id, None)
            else:
                self._remember(run_id, seq)
            dropped, self._health.dropped = self._health.dropped, 0
            self._health.pause = 0.0
        if dropped:
            logger.warning(
                "The run event log is reachable again; %d events were not logged", dropped
            )

    def _publish_failed(self, error: BaseException, now: float) -> None:
        with self._lock:
            health = self._health
            health.pause = min(
                max(health.pause * 2, self._publish_pause), _PUBLISH_PAUSE_MAX_SECONDS
            )
            health.paused_until = now + health.pause
            warn = now - health.warned_at >= _WARN_INTERVAL_SECONDS
            if warn:
                health.warned_at = now
        if warn:
            logger.warning(
                "The run event log (Redis) is unavailable: %s; runs go on, but their events "
                "are not logged (clients cannot join their streams) until it is back",
                error,
            )


# --- The access point ----------------------------------------------------------------------

_lock = threading.Lock()
_current: tuple[tuple[Any, ...], RunEventLog] | None = None


def _settings_key() -> tuple[Any, ...]:
    names = (
        "AGENT_EVENTS_BACKEND", "REDIS_URL", "CACHE_KEY_PREFIX", "AGENT_EVENTS_MAX_PER_RUN",
        "AGENT_EVENTS_TTL_SECONDS", "AGENT_EVENTS_REDIS_TIMEOUT_SECONDS",
    )  # fmt: skip
    return tuple(getattr(settings, name) for name in names)


def build_event_log() -> RunEventLog:
    """The event log the settings configure (``get_event_log`` caches it)."""
    backend = settings.AGENT_EVENTS_BACKEND.strip().lower()
    if not backend:
        backend = "redis" if settings.REDIS_URL else "memory"
    if backend == "memory":
        return MemoryEventLog(
            max_per_run=settings.AGENT_EVENTS_MAX_PER_RUN,
            ttl_seconds=settings.AGENT_EVENTS_TTL_SECONDS,
        )
    if backend == "redis":
        if not settings.REDIS_URL:
            raise ImproperlyConfigured("AGENT_EVENTS_BACKEND=redis needs REDIS_URL (or REDIS_HOST)")
        return RedisEventLog(
            url=settings.REDIS_URL,
            key_prefix=settings.CACHE_KEY_PREFIX,
            max_per_run=settings.AGENT_EVENTS_MAX_PER_RUN,
            ttl_seconds=settings.AGENT_EVENTS_TTL_SECONDS,
            timeout_seconds=settings.AGENT_EVENTS_REDIS_TIMEOUT_SECONDS,
        )
    raise ImproperlyConfigured(
        "AGENT_EVENTS_BACKEND must be redis, memory or empty, "
        f"not {settings.AGENT_EVENTS_BACKEND!r}"
    )


def get_event_log() -> RunEventLog:
    """The process's event log, one instance; rebuilt when its settings change (tests)."""
    global _current
    key = _settings_key()
    with _lock:
        if _current is None or _current[0] != key:
            _current = (key, build_event_log())
        return _current[1]
