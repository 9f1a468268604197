"""Langfuse tracing (``agents.tracing``) with the real SDK, exporting to a local receiver.

``testing.langfuse_receiver.LangfuseReceiver`` plays the Langfuse API: the SDK's OTLP export
arrives there exactly as it would at Langfuse, so these tests see what Langfuse would see.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langfuse import Langfuse
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from pytest_django.fixtures import Settings as SettingsWrapper

from agents import tracing
from agents.graph.builder import build_graph
from agents.llm.offline import OfflineChatModel
from testing.langfuse import langfuse_settings
from testing.langfuse_receiver import LangfuseReceiver, ReceivedSpan, dead_url

# A traced run may take this much longer than an untraced one, whatever Langfuse does.
LATENCY_BOUND = 0.5


def _root(span: ReceivedSpan) -> bool:
    """The trace's root span (the graph's own span may carry the same run name)."""
    return span.name == tracing.TRACE_NAME and bool(
        span.attributes.get("langfuse.internal.as_root")
    )


@pytest.fixture(autouse=True)
def _fresh_client(fresh_langfuse: None) -> None:
    """Every test starts and ends without a Langfuse client in this process."""


@pytest.fixture
def langfuse_on(settings: SettingsWrapper, receiver: LangfuseReceiver) -> LangfuseReceiver:
    langfuse_settings(settings, receiver.base_url)
    return receiver


def traced_invoke(run_id: uuid.UUID, **kwargs: Any) -> tracing.RunTrace:
    """One traced run of the smallest kind: the offline model answering once."""
    options: dict[str, Any] = {
        "user_id": 42,
        "thread_id": uuid.UUID(int=7),
        "model": "offline",
        "metadata": {"source": "test"},
        "correlation_id": "req-1",
        **kwargs,
    }
    with tracing.run_trace(run_id=run_id, **options) as trace:
        answer = OfflineChatModel().invoke("hello", config={"callbacks": trace.callbacks})
        trace.set_output(answer.text)
    return trace


def untraced_seconds() -> float:
    model = OfflineChatModel()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        model.invoke("hello")
        timings.append(time.perf_counter() - started)
    return min(timings)


# -- ids, sampling, urls -------------------------------------------------------------------


def test_trace_id_is_the_sdks_seeded_id_of_the_run() -> None:
    run_id = uuid.UUID("3f2504e0-4f89-41d3-9a0c-0305e82c3301")
    trace_id = tracing.trace_id_for_run(run_id)

    assert trace_id == Langfuse.create_trace_id(seed=str(run_id))
    assert trace_id == hashlib.sha256(str(run_id).encode()).digest()[:16].hex()
    assert len(trace_id) == 32
    assert trace_id == trace_id.lower()
    assert tracing.trace_id_for_run(str(run_id).upper()) == trace_id  # a str names the same run
    assert tracing.trace_id_for_run(uuid.uuid4()) != trace_id


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_is_sampled_is_the_trace_id_ratio_decision(rate: float) -> None:
    sampler = TraceIdRatioBased(rate)
    for i in range(200):
        trace_id = tracing.trace_id_for_run(uuid.UUID(int=i))
        expected = int(trace_id, 16) & (2**64 - 1) < round(rate * 2**64)
        decision = sampler.should_sample(None, int(trace_id, 16), "agent_run").decision
        assert tracing.is_sampled(trace_id, rate) is expected is decision.is_sampled()


def test_is_sampled_reads_the_sample_rate_setting(settings: SettingsWrapper) -> None:
    trace_id = tracing.trace_id_for_run(uuid.UUID(int=1))
    settings.LANGFUSE_SAMPLE_RATE = 0.0
    assert not tracing.is_sampled(trace_id)
    settings.LANGFUSE_SAMPLE_RATE = 1.0
    assert tracing.is_sampled(trace_id)


def test_trace_url(settings: SettingsWrapper) -> None:
    settings.LANGFUSE_HOST = "https://langfuse.example.com"
    settings.LANGFUSE_PROJECT_ID = ""
    assert tracing.trace_url("ab" * 16) == f"https://langfuse.example.com/trace/{'ab' * 16}"
    settings.LANGFUSE_PROJECT_ID = "proj-1"
    assert (
        tracing.trace_url("ab" * 16)
        == f"https://langfuse.example.com/project/proj-1/traces/{'ab' * 16}"
    )
    assert tracing.trace_url("") is None
    assert tracing.trace_url(None) is None


# -- off -------------------------------------------------------------------------------------


def test_disabled_tracing_has_no_client_and_no_callbacks(
    settings: SettingsWrapper, receiver: LangfuseReceiver
) -> None:
    langfuse_settings(settings, receiver.base_url, enabled=False)

    assert tracing.get_langfuse() is None
    trace = traced_invoke(uuid.uuid4())

    assert trace.callbacks == []
    assert trace.trace_id is None
    assert trace.url is None
    assert tracing.flush_langfuse() is True
    assert receiver.requests == []


# -- what arrives ----------------------------------------------------------------------------


def run_agent_like_the_service(run_id: uuid.UUID, thread_id: uuid.UUID) -> Iterator[str]:
    """What ``agent_run_execute`` does: a generator that traces and streams the graph."""
    graph = build_graph(model=OfflineChatModel(), tools=[], checkpointer=InMemorySaver())
    with tracing.run_trace(
        run_id=run_id,
        user_id=42,
        thread_id=thread_id,
        model="offline",
        metadata={"source": "api", "client": {"name": "web", "version": 3}},
        correlation_id="req-123",
        tags=["beta"],
        input="What can you do?",
    ) as trace:
        yield f"trace:{trace.trace_id}"
        config: RunnableConfig = {
            "configurable": {"thread_id": str(thread_id)},
            "callbacks": trace.callbacks,
            "run_name": "agent_run",
            "metadata": {"run_id": str(run_id), "user_id": "42"},
        }
        answer = ""
        for update in graph.stream(
            {"messages": [HumanMessage(content="What can you do?")]}, config, stream_mode="updates"
        ):
            for node, values in update.items():
                yield node
                for message in (values or {}).get("messages", []):
                    answer = message.text
        trace.set_output(answer)


def test_a_run_is_one_trace_with_user_session_tags_and_metadata(
    langfuse_on: LangfuseReceiver,
) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    trace_id = tracing.trace_id_for_run(run_id)

    events = list(run_agent_like_the_service(run_id, thread_id))
    assert events[0] == f"trace:{trace_id}"
    assert tracing.flush_langfuse() is True

    langfuse_on.wait_for_spans(_root)
    spans = langfuse_on.spans_for_trace(trace_id)
    assert {s.trace_id for s in langfuse_on.spans} == {trace_id}  # nothing outside the trace
    (root,) = [s for s in spans if _root(s)]
    assert root.parent_span_id not in {s.span_id for s in spans}
    assert root.attributes["langfuse.trace.name"] == "agent_run"
    assert root.attributes["langfuse.observation.type"] == "agent"
    assert root.attributes["langfuse.observation.input"] == "What can you do?"
    assert root.attributes["langfuse.observation.output"]
    assert root.attributes["langfuse.environment"] == "test"
    assert root.resource["langfuse.environment"] == "test"

    # The graph's spans (LangGraph nodes, the LLM calls) nest under the root, and every span
    # carries the trace attributes.
    by_id = {s.span_id: s for s in spans}
    generations = [
        s for s in spans if s.attributes.get("langfuse.observation.type") == "generation"
    ]
    assert len(generations) >= 2  # planner and executor
    assert len(spans) > len(generations) + 1
    for span in spans:
        ancestor = span
        while ancestor.span_id != root.span_id:
            assert ancestor.parent_span_id in by_id, f"{span.name} is not under agent_run"
            ancestor = by_id[ancestor.parent_span_id]
        assert span.attributes["user.id"] == "42"
        assert span.attributes["session.id"] == str(thread_id)
        assert span.attributes["langfuse.trace.tags"] == ["agents", "beta"]
        metadata = span.metadata()
        assert metadata["run_id"] == str(run_id)
        assert metadata["app_env"] == "test"
        assert metadata["model"] == "offline"
        assert metadata["correlation_id"] == "req-123"
        assert metadata["source"] == "api"
        assert metadata["client"] == {"name": "web", "version": 3}


def test_the_root_span_keeps_metadata_too_long_for_the_trace(
    langfuse_on: LangfuseReceiver,
) -> None:
    run_id = uuid.uuid4()
    traced_invoke(run_id, metadata={"note": "x" * 500, "short": "ok", "none": None})
    tracing.flush_langfuse()

    (root,) = langfuse_on.wait_for_spans(_root)
    assert root.metadata("observation")["note"] == "x" * 500
    assert "note" not in root.metadata("trace")
    assert root.metadata("trace")["short"] == "ok"
    assert "none" not in root.metadata("trace")


def test_a_stream_abandoned_midway_still_ends_its_trace(langfuse_on: LangfuseReceiver) -> None:
    run_id = uuid.uuid4()
    stream = run_agent_like_the_service(run_id, uuid.uuid4())
    assert next(stream).startswith("trace:")
    assert next(stream) == "planner"
    stream.close()  # the client went away: GeneratorExit inside the traced block
    tracing.flush_langfuse()

    (root,) = langfuse_on.wait_for_spans(_root)
    assert root.trace_id == tracing.trace_id_for_run(run_id)


def test_set_output_records_an_error(langfuse_on: LangfuseReceiver) -> None:
    run_id = uuid.uuid4()
    with tracing.run_trace(
        run_id=run_id, user_id=1, thread_id=uuid.uuid4(), model="offline"
    ) as trace:
        trace.set_output(None, error="tool_error: the database is down")
    tracing.flush_langfuse()

    (root,) = langfuse_on.wait_for_spans(_root)
    assert root.attributes["langfuse.observation.level"] == "ERROR"
    assert root.attributes["langfuse.observation.status_message"] == (
        "tool_error: the database is down"
    )


def test_exceptions_in_the_run_pass_through_and_the_trace_still_ends(
    langfuse_on: LangfuseReceiver,
) -> None:
    run_id = uuid.uuid4()

    def explode(_: Any) -> None:
        raise ValueError("boom")

    with (
        pytest.raises(ValueError, match="boom"),
        tracing.run_trace(
            run_id=run_id, user_id=1, thread_id=uuid.uuid4(), model="offline"
        ) as trace,
    ):
        RunnableLambda(explode).invoke("x", config={"callbacks": trace.callbacks})
    tracing.flush_langfuse()

    spans = langfuse_on.wait_for_spans(count=2)
    assert {s.trace_id for s in spans} == {tracing.trace_id_for_run(run_id)}
    (failed,) = [s for s in spans if s.name == "explode"]
    assert failed.attributes["langfuse.observation.level"] == "ERROR"


# -- sampling --------------------------------------------------------------------------------


def test_sample_rate_zero_sends_nothing_and_gives_no_trace_id(
    settings: SettingsWrapper, receiver: LangfuseReceiver
) -> None:
    langfuse_settings(settings, receiver.base_url, sample_rate=0.0)

    trace = traced_invoke(uuid.uuid4())

    assert trace.trace_id is None
    assert trace.callbacks == []
    assert tracing.flush_langfuse() is True
    assert receiver.spans == []
    assert receiver.trace_requests() == []


def test_with_a_sample_rate_exactly_the_sampled_runs_arrive(
    settings: SettingsWrapper, receiver: LangfuseReceiver
) -> None:
    langfuse_settings(settings, receiver.base_url, sample_rate=0.5)
    run_ids = [uuid.UUID(int=i) for i in range(24)]
    expected = {
        tracing.trace_id_for_run(r)
        for r in run_ids
        if tracing.is_sampled(tracing.trace_id_for_run(r))
    }
    assert 0 < len(expected) < len(run_ids)  # both outcomes are exercised

    stored = {r: traced_invoke(r).trace_id for r in run_ids}
    tracing.flush_langfuse()

    assert {t for t in stored.values() if t} == expected
    assert all(t is None or t == tracing.trace_id_for_run(r) for r, t in stored.items())
    receiver.wait_for_spans(_root, count=len(expected))
    assert {s.trace_id for s in receiver.spans} == expected


# -- Langfuse down or slow -------------------------------------------------------------------


@pytest.fixture
def sdk_imported(settings: SettingsWrapper) -> None:
    """Import the SDK up front, as ``AgentsConfig.ready`` does when tracing is on."""
    settings.LANGFUSE_ENABLED = True
    tracing.import_sdk()


@pytest.mark.usefixtures("sdk_imported")
def test_a_dead_langfuse_adds_no_latency_and_no_error(settings: SettingsWrapper) -> None:
    baseline = untraced_seconds()
    langfuse_settings(settings, dead_url(), flush_at=1)  # export at every span: during the runs
    # Creating the client (OpenTelemetry set-up) costs the same whether Langfuse is up or not,
    # and more on a loaded machine: it is not what this test bounds.
    assert tracing.get_langfuse() is not None

    for _ in range(3):
        started = time.perf_counter()
        trace = traced_invoke(uuid.uuid4())
        assert time.perf_counter() - started < baseline + LATENCY_BOUND
        assert trace.trace_id is not None  # sampled: the id is stored even if never delivered

    started = time.perf_counter()
    tracing.flush_langfuse()
    assert time.perf_counter() - started < 2 * settings.LANGFUSE_TIMEOUT_SECONDS + 1


@pytest.mark.usefixtures("sdk_imported")
def test_a_slow_langfuse_adds_no_latency(settings: SettingsWrapper) -> None:
    baseline = untraced_seconds()
    with LangfuseReceiver(delay=5.0) as slow:
        langfuse_settings(settings, slow.base_url, flush_at=1)
        try:
            for _ in range(3):
                started = time.perf_counter()
                traced_invoke(uuid.uuid4())
                assert time.perf_counter() - started < baseline + LATENCY_BOUND
            # The exporter did reach the receiver (and is stuck waiting for its answer).
            slow.wait_for_spans(timeout=2.0)
            assert slow.trace_requests()

            # A flush gives up on a slow Langfuse: at most twice the export timeout.
            started = time.perf_counter()
            assert tracing.flush_langfuse() is False
            assert time.perf_counter() - started < 2 * settings.LANGFUSE_TIMEOUT_SECONDS + 0.5
        finally:
            slow.release()


def test_sdk_errors_never_reach_the_run(
    langfuse_on: LangfuseReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("sdk bug")

    monkeypatch.setattr(Langfuse, "start_as_current_observation", broken)
    with caplog.at_level(logging.WARNING, logger="agents.tracing"):
        trace = traced_invoke(uuid.uuid4())

    assert trace.trace_id is None
    assert trace.callbacks == []
    assert "running untraced" in caplog.text

    # The run's own errors still pass through, not chained to the SDK's.
    with (
        pytest.raises(KeyError) as raised,
        tracing.run_trace(run_id=uuid.uuid4(), user_id=1, thread_id=uuid.uuid4(), model="x"),
    ):
        raise KeyError("run error")
    assert raised.value.__context__ is None


def test_a_client_that_cannot_be_created_is_none(
    langfuse_on: LangfuseReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no threads left")

    monkeypatch.setattr(Langfuse, "__init__", broken)
    with caplog.at_level(logging.WARNING, logger="agents.tracing"):
        assert tracing.get_langfuse() is None
        assert tracing.get_langfuse() is None
        trace = traced_invoke(uuid.uuid4())

    assert trace.trace_id is None
    assert caplog.text.count("could not create its client") == 1  # warned once


# -- one client per process ------------------------------------------------------------------


def test_one_client_per_process_replaced_when_the_public_key_changes(
    settings: SettingsWrapper, langfuse_on: LangfuseReceiver
) -> None:
    first = tracing.get_langfuse()
    assert first is not None
    assert tracing.get_langfuse() is first

    with LangfuseReceiver() as other:
        langfuse_settings(settings, other.base_url)  # another project: a new public key
        second = tracing.get_langfuse()
        assert second is not None
        assert second is not first
        traced_invoke(uuid.uuid4())
        tracing.flush_langfuse()
        other.wait_for_spans(_root)
        assert langfuse_on.spans == []


def test_changed_settings_with_the_same_public_key_turn_tracing_off(
    settings: SettingsWrapper, langfuse_on: LangfuseReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK keeps one client per public key and process: a new host needs a restart."""
    assert tracing.get_langfuse() is not None

    with LangfuseReceiver() as other, caplog.at_level(logging.WARNING, logger="agents.tracing"):
        settings.LANGFUSE_HOST = other.base_url
        assert tracing.get_langfuse() is None
        trace = traced_invoke(uuid.uuid4())  # the run goes on, untraced
        assert trace.trace_id is None
        assert tracing.flush_langfuse() is True
        assert other.requests == []
    assert langfuse_on.trace_requests() == []
    assert caplog.text.count("Langfuse is off in this process") == 1


def test_a_forked_process_traces_and_sends_the_parents_spans_no_second_time(
    langfuse_on: LangfuseReceiver,
) -> None:
    """Like a gunicorn worker forked from a master that already had a client."""
    parent_client = tracing.get_langfuse()
    assert parent_client is not None
    parent_run, child_run = uuid.uuid4(), uuid.uuid4()
    traced_invoke(parent_run)  # queued in the parent when it forks (nothing is flushed yet)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            usable = tracing.get_langfuse() is not None
            trace = traced_invoke(child_run)
            flushed = tracing.flush_langfuse()
            os.write(write_end, f"{usable} {flushed} {trace.trace_id}".encode())
            code = 0
        finally:
            os._exit(code)

    os.close(write_end)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked process did not finish")
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    assert os.waitstatus_to_exitcode(done[1]) == 0, report
    assert report == f"True True {tracing.trace_id_for_run(child_run)}"
    langfuse_on.wait_for_spans(lambda s: _root(s) and s.trace_id == report.split()[-1])
    parent_trace = tracing.trace_id_for_run(parent_run)
    assert langfuse_on.spans_for_trace(parent_trace) == []  # the child did not send them

    assert tracing.get_langfuse() is parent_client  # the parent's client is untouched
    assert tracing.flush_langfuse() is True
    roots = [s for s in langfuse_on.spans_for_trace(parent_trace) if _root(s)]
    assert len(roots) == 1  # sent once, by the parent


# -- flushing --------------------------------------------------------------------------------


class TracedCommand(BaseCommand):
    """A command that runs an agent, flushing in its ``handle`` as ``agents.tracing`` says."""

    help = "Trace one run."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", type=uuid.UUID)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            traced_invoke(options["run_id"])
        finally:
            tracing.flush_langfuse()


def test_a_command_that_flushes_in_handle_has_sent_its_trace_when_it_returns(
    langfuse_on: LangfuseReceiver,
) -> None:
    run_id = uuid.uuid4()
    traced_invoke(uuid.uuid4())
    assert langfuse_on.spans == []  # a run's spans wait for a flush (the interval is a minute)

    call_command(TracedCommand(), str(run_id), stdout=io.StringIO())

    assert any(_root(s) for s in langfuse_on.spans_for_trace(tracing.trace_id_for_run(run_id)))


EXITING_PROCESS = """
import sys, time, uuid
import django
django.setup()
from agents import tracing
from agents.llm.offline import OfflineChatModel
run_id = uuid.uuid4()
with tracing.run_trace(run_id=run_id, user_id=1, thread_id=uuid.uuid4(), model="offline") as t:
    OfflineChatModel().invoke("hello", config={"callbacks": t.callbacks})
print(t.trace_id, time.time(), flush=True)
"""


def exit_a_process_with_a_trace(host: str) -> tuple[str, float]:
    """Run a trace in a new process that exits without flushing: (trace id, seconds to exit)."""
    environ = {
        **os.environ,
        "APP_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LANGFUSE_ENABLED": "true",
        "TEST_LANGFUSE_ENABLED": "true",  # APP_ENV=test keeps tracing off unless asked
        "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
        "LANGFUSE_SECRET_KEY": "sk-lf-test",
        "LANGFUSE_HOST": host,
        "LANGFUSE_TIMEOUT_SECONDS": "1",
        "LANGFUSE_FLUSH_INTERVAL": "60",
        "LANGFUSE_SAMPLE_RATE": "1",
    }
    environ.pop("LANGFUSE_BASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", EXITING_PROCESS],
        cwd=settings_module_root(),
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ended = time.time()
    assert result.returncode == 0, result.stderr
    trace_id, printed_at = result.stdout.split()[-2:]
    return trace_id, ended - float(printed_at)


def settings_module_root() -> str:
    import config

    return os.path.dirname(os.path.dirname(os.path.abspath(config.__file__)))


def test_spans_are_flushed_when_the_process_exits(langfuse_on: LangfuseReceiver) -> None:
    trace_id, _ = exit_a_process_with_a_trace(langfuse_on.base_url)

    langfuse_on.wait_for_spans(lambda s: _root(s) and s.trace_id == trace_id, timeout=1)


@pytest.mark.parametrize("langfuse", ["dead", "slow"])
def test_a_dead_or_slow_langfuse_delays_the_exit_at_most_twice_the_timeout(
    langfuse: str,
) -> None:
    with LangfuseReceiver(delay=30.0) as slow:
        try:
            host = dead_url() if langfuse == "dead" else slow.base_url
            trace_id, exit_seconds = exit_a_process_with_a_trace(host)
        finally:
            slow.release()

    assert len(trace_id) == 32
    # LANGFUSE_TIMEOUT_SECONDS=1: twice that, plus the interpreter's own exit, which takes seconds
    # on a loaded 2-core machine. Unbounded, the slow receiver would hold the exit for 30 s.
    assert exit_seconds < 2 * 1 + 5


def test_flush_without_a_client_is_a_no_op() -> None:
    assert tracing.flush_langfuse() is True


# -- settings --------------------------------------------------------------------------------

LANGFUSE_ENV = (
    "LANGFUSE_ENABLED",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGFUSE_HOST",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_SAMPLE_RATE",
    "LANGFUSE_TIMEOUT_SECONDS",
    "LANGCHAIN_TRACING_V2",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_API_KEY",
)


@pytest.fixture
def load_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Load ``config.settings.langfuse`` from a given environment."""
    import config.settings.langfuse as module

    def load(**environ: str) -> Any:
        for name in LANGFUSE_ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(module)

    yield load
    monkeypatch.undo()
    importlib.reload(module)


def test_settings_defaults(load_settings: Any) -> None:
    module = load_settings()
    assert module.LANGFUSE_ENABLED is False
    assert module.LANGFUSE_HOST == "https://cloud.langfuse.com"
    assert module.LANGFUSE_SAMPLE_RATE == 1.0
    assert module.LANGCHAIN_TRACING_V2 is False


def test_settings_accept_the_sdks_base_url(load_settings: Any) -> None:
    assert load_settings(LANGFUSE_BASE_URL="http://lf:3000/").LANGFUSE_HOST == "http://lf:3000"
    module = load_settings(LANGFUSE_BASE_URL="http://lf:3000", LANGFUSE_HOST="http://host:1")
    assert module.LANGFUSE_HOST == "http://host:1"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LANGFUSE_ENABLED": "true"}, "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not set"),
        (
            {"LANGFUSE_ENABLED": "true", "LANGFUSE_PUBLIC_KEY": "pk"},
            "LANGFUSE_SECRET_KEY is not set",
        ),
        ({"LANGFUSE_SAMPLE_RATE": "1.5"}, "LANGFUSE_SAMPLE_RATE=1.5 is not valid"),
        ({"LANGFUSE_SAMPLE_RATE": "-0.1"}, "LANGFUSE_SAMPLE_RATE=-0.1 is not valid"),
        ({"LANGFUSE_TIMEOUT_SECONDS": "0"}, "LANGFUSE_TIMEOUT_SECONDS"),
        ({"LANGFUSE_HOST": "cloud.langfuse.com"}, "LANGFUSE_HOST"),
        ({"LANGCHAIN_TRACING_V2": "true"}, "LANGCHAIN_API_KEY is not set"),
    ],
)
def test_settings_refuse_a_broken_configuration(
    load_settings: Any, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        load_settings(**environ)


def test_settings_enabled_with_keys(load_settings: Any) -> None:
    module = load_settings(
        LANGFUSE_ENABLED="true",
        LANGFUSE_PUBLIC_KEY="pk-lf-1",
        LANGFUSE_SECRET_KEY="sk-lf-1",
        LANGFUSE_SAMPLE_RATE="0.25",
        LANGCHAIN_TRACING_V2="true",
        LANGSMITH_API_KEY="ls-1",
    )
    assert module.LANGFUSE_ENABLED is True
    assert module.LANGFUSE_SAMPLE_RATE == 0.25
    assert module.LANGCHAIN_API_KEY == "ls-1"


_DATA_URI = "data:image/png;base64," + "iVBORw0KGgo" * 8


@pytest.mark.parametrize("upload", [False, True])
def test_the_media_scan_runs_only_when_media_upload_is_enabled(
    langfuse_on: LangfuseReceiver, settings: SettingsWrapper, upload: bool
) -> None:
    if upload:
        settings.LANGFUSE_MEDIA_UPLOAD_ENABLED = True
    run_id = uuid.uuid4()
    traced_invoke(run_id, input=_DATA_URI)
    tracing.flush_langfuse()

    (root,) = langfuse_on.wait_for_spans(_root)
    recorded = root.attributes["langfuse.observation.input"]
    if upload:  # the SDK replaced the data by a reference to its upload (which the receiver
        # refuses: it serves no media API)
        assert "@@@langfuseMedia:type=image/png" in recorded
    else:  # off by default: the text as it came
        assert recorded == _DATA_URI


@pytest.mark.django_db
def test_an_approval_decision_is_on_the_resumed_runs_trace(
    langfuse_on: LangfuseReceiver, llm_server: Any, settings: SettingsWrapper, user: Any
) -> None:
    from agents.runner import agent_run, agent_run_events, agent_run_resume_start
    from testing.llm_server import Reply

    settings.AGENT_APPROVAL_REQUIRED_TOOLS = ["http_post"]
    llm_server.enqueue(
        Reply.text("1. Post."),
        Reply.tool_calls([("http_post", {"url": "https://example.com/hook"})]),
        Reply.text("Not posted."),
    )
    paused = agent_run(user=user, message="post it")
    assert paused.status == "interrupted"
    resumed = agent_run_resume_start(run=paused, decision="reject", comment="not today")
    for _event in agent_run_events(run=resumed):
        pass
    assert tracing.flush_langfuse() is True

    trace_id = tracing.trace_id_for_run(resumed.id)
    langfuse_on.wait_for_spans(lambda s: _root(s) and s.trace_id == trace_id)
    (root,) = [s for s in langfuse_on.spans_for_trace(trace_id) if _root(s)]
    metadata = root.metadata()
    assert metadata["approval_decision"] == "reject"
    assert metadata["approval_comment"] == "not today"
    assert metadata["resumed_from"] == str(paused.id)
