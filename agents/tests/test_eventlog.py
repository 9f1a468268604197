"""The per-run event log (``agents.eventlog``): ids, reads after an id, following, retention and
Redis outages, on both backends (Redis in services mode: the real server of REDIS_URL)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings as SettingsWrapper

from agents.eventlog import (
    MAX_EVENT_ID,
    TERMINAL_EVENTS,
    EventLogUnavailable,
    LoggedEvent,
    MemoryEventLog,
    RedisEventLog,
    RunEventLog,
    get_event_log,
    parse_last_event_id,
)
from core.exception_handler import exception_handler
from testing.faults import OwnRedis
from testing.live import free_port

T = TypeVar("T")


def run_async(log: RunEventLog, make: Callable[[], Awaitable[T]]) -> T:
    """``make()`` on a fresh event loop (no pytest-asyncio here); the log's async Redis
    connections are closed before the loop is."""

    async def main() -> T:
        try:
            return await make()
        finally:
            if isinstance(log, RedisEventLog):
                await log.aclose()

    return asyncio.run(main())


class Ticker:
    """Counts how often the event loop ran a 10 ms sleep: a blocked loop does not tick."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1


async def timed_follow(
    log: RunEventLog, run_id: str, after: str | None, wait: float
) -> tuple[list[LoggedEvent], float, int]:
    """``follow`` with a ticker beside it: (events, seconds it took, ticks meanwhile)."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    started = time.monotonic()
    try:
        events = await log.follow(run_id, after, wait_seconds=wait)
    finally:
        task.cancel()
    return events, time.monotonic() - started, ticker.ticks


def publish_later(log: RunEventLog, run_id: str, delay: float, *events: str) -> threading.Thread:
    def work() -> None:
        time.sleep(delay)
        for n, event in enumerate(events):
            log.publish(run_id, event, {"n": n})

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.fixture
def redis_settings(settings: SettingsWrapper) -> SettingsWrapper:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (services mode)")
    settings.AGENT_EVENTS_BACKEND = "redis"
    return settings


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def log(request: pytest.FixtureRequest, settings: SettingsWrapper) -> RunEventLog:
    if request.param == "redis":
        request.getfixturevalue("redis_settings")
    else:
        settings.AGENT_EVENTS_BACKEND = "memory"
    log = get_event_log()
    assert type(log) is {"memory": MemoryEventLog, "redis": RedisEventLog}[request.param]
    return log


@pytest.fixture
def run_id(log: RunEventLog) -> Iterator[str]:
    run_id = str(uuid.uuid4())
    yield run_id
    log.forget(run_id)


# --- Publishing and reading ------------------------------------------------------------------


def test_ids_count_from_one_per_run(log, run_id):
    other = str(uuid.uuid4())
    try:
        assert [log.publish(run_id, "token", {"text": t}) for t in "abc"] == ["1", "2", "3"]
        assert log.publish(other, "run", {}) == "1"  # each run has its own sequence

        assert log.read(run_id) == [
            LoggedEvent(id="1", event="token", data={"text": "a"}),
            LoggedEvent(id="2", event="token", data={"text": "b"}),
            LoggedEvent(id="3", event="token", data={"text": "c"}),
        ]
        assert log.read(other) == [LoggedEvent(id="1", event="run", data={})]
    finally:
        log.forget(other)


def test_read_after_an_id_returns_exactly_the_later_events(log, run_id):
    published = [
        LoggedEvent(id=log.publish(run_id, "token", {"n": n}), event="token", data={"n": n})
        for n in range(10)
    ]

    assert log.read(run_id) == published
    assert log.read(run_id, None) == published
    for k in range(11):
        assert log.read(run_id, after=str(k)) == published[k:], k
    assert log.read(run_id, after="1000") == []
    assert log.read(str(uuid.uuid4())) == []  # a run nobody published for


def test_an_id_that_is_no_id_is_refused(log, run_id):
    for after in ("abc", "-1", "1.5", " 1", "9" * 30):
        with pytest.raises(ValueError, match="not an event id"):
            log.read(run_id, after=after)


def test_data_round_trips_as_json(log, run_id):
    data = {
        "text": 'Grüße, 世界 — "quoted"\nnew line',
        "nested": {"list": [1, 2.5, True, None, {"deep": []}]},
        "at": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC),  # default=str
    }
    log.publish(run_id, "tool_result", data)

    [event] = log.read(run_id)
    assert event.data == {**data, "at": "2024-05-01 12:00:00+00:00"}


def test_an_event_name_that_would_break_the_sse_framing_is_refused(log, run_id):
    for name in ("", "token\ndata: forged", "token\r"):
        with pytest.raises(ValueError, match="not an SSE event name"):
            log.publish(run_id, name, {})
    with pytest.raises(TypeError):
        log.publish(run_id, "token", ["not", "an", "object"])
    assert log.read(run_id) == []


def test_two_publishing_threads_never_share_an_id(log, run_id):
    per_thread = 200
    start = threading.Barrier(2)
    ids: dict[int, list[str]] = {0: [], 1: []}

    def publish(thread: int) -> None:
        start.wait()
        for n in range(per_thread):
            ids[thread].append(log.publish(run_id, "token", {"thread": thread, "n": n}))

    threads = [threading.Thread(target=publish, args=(t,)) for t in (0, 1)]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()

    every = ids[0] + ids[1]
    assert sorted(map(int, every)) == list(range(1, 2 * per_thread + 1))
    events = log.read(run_id)
    assert [int(e.id) for e in events] == list(range(1, 2 * per_thread + 1))
    for thread in (0, 1):  # each thread's events in its own order, under the ids it was given
        mine = [e for e in events if e.data["thread"] == thread]
        assert [e.data["n"] for e in mine] == list(range(per_thread))
        assert [e.id for e in mine] == ids[thread]


def test_forget_drops_the_log_and_the_sequence_starts_again(log, run_id):
    log.publish(run_id, "run", {})
    log.publish(run_id, "done", {})

    log.forget(run_id)

    assert log.read(run_id) == []
    assert log.publish(run_id, "run", {}) == "1"


# --- Following --------------------------------------------------------------------------------


def test_follow_returns_at_once_when_events_exist(log, run_id):
    log.publish(run_id, "run", {"n": 0})
    log.publish(run_id, "plan", {"n": 1})

    events, took, _ = run_async(log, lambda: timed_follow(log, run_id, None, 10.0))
    assert [(e.id, e.event) for e in events] == [("1", "run"), ("2", "plan")]
    assert took < 1.0

    events, took, _ = run_async(log, lambda: timed_follow(log, run_id, "1", 10.0))
    assert [(e.id, e.event) for e in events] == [("2", "plan")]
    assert took < 1.0


def test_follow_waits_for_a_producer_thread_and_wakes_when_it_publishes(log, run_id):
    log.publish(run_id, "run", {})

    async def follow() -> tuple[list[LoggedEvent], float, int]:
        producer = publish_later(log, run_id, 0.3, "plan", "token")
        try:
            return await timed_follow(log, run_id, "1", 10.0)
        finally:
            await asyncio.to_thread(producer.join)

    events, took, ticks = run_async(log, follow)
    assert events, "follow returned nothing"
    assert events[0] == LoggedEvent(id="2", event="plan", data={"n": 0})
    assert 0.25 <= took < 5.0
    assert ticks >= 10  # the loop went on while follow waited
    # Whatever the first wake-up did not return, the next call does, once.
    rest = log.read(run_id, after=events[-1].id)
    assert [e.id for e in events + rest] == ["2", "3"]


def test_follow_before_the_first_event_wakes_on_it(log, run_id):
    async def follow() -> tuple[list[LoggedEvent], float, int]:
        producer = publish_later(log, run_id, 0.2, "run")
        try:
            return await timed_follow(log, run_id, None, 10.0)
        finally:
            await asyncio.to_thread(producer.join)

    events, took, _ = run_async(log, follow)
    assert [e.id for e in events] == ["1"]
    assert took < 5.0


def test_two_followers_are_both_woken(log, run_id):
    async def both() -> list[tuple[list[LoggedEvent], float, int]]:
        producer = publish_later(log, run_id, 0.2, "run")
        try:
            return list(
                await asyncio.gather(
                    timed_follow(log, run_id, None, 10.0), timed_follow(log, run_id, None, 10.0)
                )
            )
        finally:
            await asyncio.to_thread(producer.join)

    for events, took, _ in run_async(log, both):
        assert [e.id for e in events] == ["1"]
        assert took < 5.0


def test_follow_times_out_with_nothing(log, run_id):
    log.publish(run_id, "run", {})

    events, took, ticks = run_async(log, lambda: timed_follow(log, run_id, "1", 0.3))
    assert events == []
    assert 0.29 <= took < 3.0
    assert ticks >= 10

    events, took, _ = run_async(log, lambda: timed_follow(log, run_id, "1", 0))
    assert events == []
    assert took < 1.0


def test_terminal_events():
    assert frozenset({"done", "error", "interrupt"}) == TERMINAL_EVENTS


# --- Memory: trimming and expiry ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_keeps_the_newest_events_and_reads_after_a_trimmed_id_return_what_is_kept():
    log = MemoryEventLog(max_per_run=5, ttl_seconds=60)
    for n in range(12):
        log.publish("run", "token", {"n": n})

    assert [e.id for e in log.read("run")] == ["8", "9", "10", "11", "12"]
    assert [e.id for e in log.read("run", after="2")] == ["8", "9", "10", "11", "12"]
    assert [e.id for e in log.read("run", after="9")] == ["10", "11", "12"]
    assert log.publish("run", "done", {}) == "13"  # trimming does not reuse ids


def test_memory_logs_expire_after_their_last_event_and_are_evicted():
    clock = Clock()
    log = MemoryEventLog(max_per_run=100, ttl_seconds=60, clock=clock)
    log.publish("old", "run", {})
    log.publish("active", "run", {})
    clock.now += 50
    log.publish("active", "token", {})  # refreshes "active"'s TTL only
    clock.now += 15

    assert log.read("old") == []
    assert [e.id for e in log.read("active")] == ["1", "2"]

    clock.now += 50
    log.publish("new", "run", {})  # evicts what expired
    assert log.read("active") == []
    assert list(log._runs) == ["new"]  # memory holds only what is alive
    assert log.publish("old", "run", {}) == "1"  # an expired log starts again


def test_memory_follow_is_woken_by_forget():
    log = MemoryEventLog(max_per_run=10, ttl_seconds=60)

    async def follow() -> tuple[list[LoggedEvent], float, int]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, log.forget, "run")
        return await timed_follow(log, "run", None, 10.0)

    events, took, _ = asyncio.run(follow())
    assert events == []
    assert took < 5.0
    assert log._waiters == {}


# --- Redis: the stream, TTL, trimming, outages ------------------------------------------------


def raw_client(settings: SettingsWrapper) -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


@pytest.mark.services
def test_redis_keeps_a_stream_per_run_with_a_ttl(redis_settings):
    redis_settings.AGENT_EVENTS_TTL_SECONDS = 120
    log = get_event_log()
    run_id = str(uuid.uuid4())
    key = f"{redis_settings.CACHE_KEY_PREFIX}:agent-run-events:{run_id}"
    client = raw_client(redis_settings)
    try:
        log.publish(run_id, "run", {"run_id": run_id})
        client.expire(key, 5)
        log.publish(run_id, "token", {"text": "é"})  # refreshes the TTL

        assert client.type(key) == "stream"
        assert 110 < client.ttl(key) <= 120
        assert client.xrange(key) == [
            ("0-1", {"event": "run", "data": f'{{"run_id": "{run_id}"}}'}),
            ("0-2", {"event": "token", "data": '{"text": "é"}'}),  # ensure_ascii=False
        ]
    finally:
        log.forget(run_id)
    assert client.exists(key) == 0


@pytest.mark.services
def test_redis_trims_to_about_max_per_run(redis_settings):
    redis_settings.AGENT_EVENTS_MAX_PER_RUN = 10
    log = get_event_log()
    run_id = str(uuid.uuid4())
    key = f"{redis_settings.CACHE_KEY_PREFIX}:agent-run-events:{run_id}"
    try:
        for n in range(250):
            log.publish(run_id, "token", {"n": n})

        kept = log.read(run_id)
        # Approximate trimming drops whole stream nodes (100 entries by default): at least 10.
        assert 10 <= len(kept) < 250
        assert raw_client(redis_settings).xlen(key) == len(kept)
        ids = [int(e.id) for e in kept]
        assert ids == list(range(251 - len(kept), 251))
        assert [e.data["n"] for e in kept] == [i - 1 for i in ids]
        assert log.read(run_id, after="1") == kept  # trimmed past "1": what is kept
        assert log.publish(run_id, "done", {}) == "251"
    finally:
        log.forget(run_id)


@pytest.mark.services
def test_two_processes_publishing_one_run_never_share_an_id(redis_settings):
    """Two logs with nothing in common but Redis: what two app processes are."""

    def another() -> RedisEventLog:
        return RedisEventLog(
            url=redis_settings.REDIS_URL,
            key_prefix=redis_settings.CACHE_KEY_PREFIX,
            max_per_run=10_000,
            ttl_seconds=60,
            timeout_seconds=2.0,
        )

    first, second = another(), another()
    run_id = str(uuid.uuid4())
    try:
        assert first.publish(run_id, "run", {}) == "1"
        assert second.publish(run_id, "plan", {}) == "2"  # past what it expected: "1"
        assert first.publish(run_id, "token", {}) == "3"

        ids: list[str] = []
        lock = threading.Lock()

        def publish(log: RedisEventLog) -> None:
            for n in range(100):
                got = log.publish(run_id, "token", {"n": n})
                with lock:
                    ids.append(got)

        threads = [threading.Thread(target=publish, args=(log,)) for log in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(map(int, ids)) == list(range(4, 204))
        assert [int(e.id) for e in first.read(run_id)] == list(range(1, 204))
    finally:
        first.forget(run_id)


def test_redis_down_publish_goes_on_and_reads_are_unavailable(settings, caplog):
    # A port nothing listens on: no server needed, so this runs in both modes.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.AGENT_EVENTS_BACKEND = ""
    settings.AGENT_EVENTS_REDIS_TIMEOUT_SECONDS = 0.5
    log = get_event_log()
    assert isinstance(log, RedisEventLog)
    run_id = str(uuid.uuid4())

    with caplog.at_level(logging.WARNING, logger="agents.eventlog"):
        started = time.monotonic()
        ids = [log.publish(run_id, "token", {"n": n}) for n in range(20)]
        took = time.monotonic() - started

    assert ids == [str(n) for n in range(1, 21)]  # still unique, still in order
    assert took < 2.0  # the run is not held up
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per event

    with pytest.raises(EventLogUnavailable):
        log.read(run_id)
    with pytest.raises(EventLogUnavailable):
        run_async(log, lambda: log.follow(run_id, None, wait_seconds=0.2))
    log.forget(run_id)  # best effort: no error

    response = exception_handler(EventLogUnavailable(), {})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.data["code"] == "event_log_unavailable"


def test_a_hung_redis_holds_a_run_up_once_not_per_event():
    # A listening socket nobody accepts on: connections succeed, commands never get an answer.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as hung:
        log = RedisEventLog(
            url=f"redis://127.0.0.1:{hung.getsockname()[1]}/0",
            key_prefix="eventlog-hung",
            max_per_run=100,
            ttl_seconds=60,
            timeout_seconds=0.2,
        )
        started = time.monotonic()
        ids = [log.publish("run", "token", {"n": n}) for n in range(30)]
        took = time.monotonic() - started

        # Reads give up after the timeout; a follow after its wait plus the timeout.
        with pytest.raises(EventLogUnavailable):
            log.read("run")
        follow_started = time.monotonic()
        with pytest.raises(EventLogUnavailable):
            run_async(log, lambda: log.follow("run", None, wait_seconds=0.3))
        assert time.monotonic() - follow_started < 3.0

    assert ids == [str(n) for n in range(1, 31)]
    # One publish waits out its timeouts; the rest skip Redis while it is paused (without the
    # pause: 30 x 2 attempts x 0.2 s).
    assert took < 3.0


def test_publish_failures_are_warned_about_once_a_minute_not_per_event(caplog):
    log = RedisEventLog(
        url=f"redis://127.0.0.1:{free_port()}/0",
        key_prefix="eventlog-down",
        max_per_run=100,
        ttl_seconds=60,
        timeout_seconds=0.5,
        publish_pause_seconds=0.0,  # every publish tries Redis, and fails
    )
    with caplog.at_level(logging.WARNING, logger="agents.eventlog"):
        assert [log.publish("run", "token", {}) for _ in range(5)] == ["1", "2", "3", "4", "5"]
    assert len(caplog.records) == 1
    assert "unavailable" in caplog.records[0].getMessage()


@pytest.mark.services
def test_ids_given_while_redis_was_down_are_never_reused(caplog):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    own = OwnRedis().start()
    log = RedisEventLog(
        url=own.url,
        key_prefix="eventlog-own",
        max_per_run=100,
        ttl_seconds=60,
        timeout_seconds=0.5,
        publish_pause_seconds=0.0,  # try Redis again on the next publish
    )
    try:
        assert log.publish("run", "run", {}) == "1"
        assert log.publish("run", "plan", {}) == "2"
        own.stop()
        assert log.publish("run", "token", {"text": "lost"}) == "3"
        own.start()  # empty: no persistence
        with caplog.at_level(logging.WARNING, logger="agents.eventlog"):
            assert log.publish("run", "token", {"text": "kept"}) == "4"

        # "3" went to the live stream only; a client that saw it joins after it.
        assert log.read("run") == [LoggedEvent(id="4", event="token", data={"text": "kept"})]
        assert log.read("run", after="3") == log.read("run")
        assert any("1 events were not logged" in r.getMessage() for r in caplog.records)

        async def follow() -> list[LoggedEvent]:
            return await log.follow("run", "3", wait_seconds=1.0)

        assert [e.id for e in run_async(log, follow)] == ["4"]
    finally:
        own.stop()


# --- The access point and the header ---------------------------------------------------------


def test_get_event_log_is_one_instance_rebuilt_when_its_settings_change(settings):
    settings.AGENT_EVENTS_BACKEND = "memory"
    log = get_event_log()
    assert get_event_log() is log
    log.publish("run", "run", {})

    settings.AGENT_EVENTS_TTL_SECONDS = 7
    rebuilt = get_event_log()
    assert rebuilt is not log
    assert rebuilt.read("run") == []


def test_the_backend_follows_redis_url_unless_chosen(settings):
    settings.AGENT_EVENTS_BACKEND = ""
    settings.REDIS_URL = ""
    assert isinstance(get_event_log(), MemoryEventLog)

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # not connected to when built
    assert isinstance(get_event_log(), RedisEventLog)

    settings.AGENT_EVENTS_BACKEND = "Memory"
    assert isinstance(get_event_log(), MemoryEventLog)

    settings.AGENT_EVENTS_BACKEND = "kafka"
    with pytest.raises(ImproperlyConfigured, match="kafka"):
        get_event_log()

    settings.AGENT_EVENTS_BACKEND = "redis"
    settings.REDIS_URL = ""
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        get_event_log()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("abc", None),
        ("-1", None),
        ("+1", None),
        ("0", None),
        ("000", None),
        ("1.5", None),
        ("1e3", None),
        ("1 2", None),
        ("12abc", None),
        ("0x10", None),
        ("١٢", None),  # Arabic-Indic digits: int() would take them
        ("1_000", None),  # int() would take this too
        ("12", "12"),
        (" 12 ", "12"),
        ("\t7\t", "7"),
        ("0012", "12"),
        (str(MAX_EVENT_ID), str(MAX_EVENT_ID)),
        (str(MAX_EVENT_ID + 1), None),
        ("9" * 20, None),
        ("1" * 100_000, None),  # past int()'s digit limit: refused before converting
    ],
)
def test_parse_last_event_id(header: str | None, expected: str | None):
    assert parse_last_event_id(header) == expected


def test_a_parsed_header_is_an_id_every_backend_reads_after(log, run_id):
    for n in range(3):
        log.publish(run_id, "token", {"n": n})
    assert [e.id for e in log.read(run_id, parse_last_event_id(" 2 "))] == ["3"]
    assert [e.id for e in log.read(run_id, parse_last_event_id("junk"))] == ["1", "2", "3"]
    big = parse_last_event_id(str(MAX_EVENT_ID))
    assert log.read(run_id, big) == []
    events: Any = run_async(log, lambda: log.follow(run_id, big, wait_seconds=0.05))
    assert events == []
