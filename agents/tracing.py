"""Langfuse tracing for agent runs: the one access point (Langfuse Python SDK v5).

Each run is one Langfuse trace named ``agent_run``::

    with run_trace(run_id=run.id, user_id=user.id, thread_id=thread.id, model=model,
                   metadata=run.metadata, correlation_id=cid, input=message) as trace:
        config["callbacks"] += trace.callbacks     # the graph's spans nest under the trace
        ...
        trace.set_output(answer, error=None)
    run.trace_id = trace.trace_id or ""            # None: tracing off, or this run not sampled

A management command that runs agents flushes before it returns (the process may exit before
the background export runs)::

    def handle(self, *args, **options):
        try:
            ...                                    # runs agents
        finally:
            flush_langfuse()

How it behaves:

* **One client per process, created lazily** by :func:`get_langfuse` from ``django.conf.settings``
  on the first traced run, so gunicorn/uvicorn workers normally each create their own after the
  fork. A client made before a fork stays usable in the child: the SDK restarts its background
  threads there, and spans queued in the parent are dropped in the child (the parent sends
  them), so nothing is sent twice.
* **The SDK keeps one client per public key and process** (``Langfuse(...)`` with a key it has
  seen returns that key's resources). So settings with a new public key get a new client (the
  old one is shut down in the background); changed settings with a public key this process has
  already used turn tracing off in this process, with a warning, until it restarts. Create
  clients through :func:`get_langfuse` only: one made elsewhere with the same key (e.g. with
  ``langfuse.get_client()``) would take the key's place with its own tracer provider.
* **Deterministic trace ids**: :func:`trace_id_for_run` is the SDK's
  ``Langfuse.create_trace_id(seed=str(run_id))``, i.e. ``sha256(str(run_id))[:16]`` in hex.
* **Sampling** is the SDK's: an OpenTelemetry ``TraceIdRatioBased(LANGFUSE_SAMPLE_RATE)`` sampler
  on the trace id (its low 64 bits), the same decision for every span of a run.
  :func:`is_sampled` makes that decision without a client; ``RunTrace.trace_id`` is taken from
  the real root span (``None`` when the SDK did not record it).
* **Never in the way of a run**: the SDK exports from a background thread (OpenTelemetry's
  ``BatchSpanProcessor``; a bounded queue, requests bounded by ``LANGFUSE_TIMEOUT_SECONDS``,
  retries included). Nothing in :func:`run_trace` touches the network, and any SDK error is
  logged as a warning and the run goes on untraced.
* **No media scan** unless ``LANGFUSE_MEDIA_UPLOAD_ENABLED``: the SDK would walk every span's
  input and output for base64 data to upload as attachments; runs carry text only.
* **Flushed** at process exit (``atexit``) and by :func:`flush_langfuse` (management commands
  call it in their ``handle``), each time waiting at most ``2 * LANGFUSE_TIMEOUT_SECONDS``: the
  client's ``flush()``/``shutdown()`` run on a daemon thread that is given up on after that.
  :func:`close_langfuse` shuts the client down for good.

The client gets a TracerProvider of its own (not the global OpenTelemetry one), so other
OpenTelemetry users in the process neither receive these spans nor change their sampling.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:  # imported where used: the SDK costs startup time to commands that never trace
    from langchain_core.callbacks import BaseCallbackHandler
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)

TRACE_NAME = "agent_run"
# Langfuse drops propagated (trace-level) values longer than this; they stay on the root span.
_PROPAGATED_VALUE_LIMIT = 200
_STATUS_MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class _Config:
    public_key: str
    secret_key: str
    host: str
    sample_rate: float
    timeout: int
    flush_at: int
    flush_interval: float
    environment: str
    release: str
    media_upload: bool = False


@dataclass
class _State:
    config: _Config
    client: Langfuse
    provider: TracerProvider


_lock = threading.RLock()
_state: _State | None = None
_keys_used: set[str] = set()  # the public keys this process has made a client for
_failed: _Config | None = None  # the config whose client could not be made (warned once)


def _reinit_after_fork() -> None:
    """A lock held by another thread at fork time would never be released in the child."""
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def _config() -> _Config | None:
    if not settings.LANGFUSE_ENABLED:
        return None
    return _Config(
        public_key=settings.LANGFUSE_PUBLIC_KEY,
        secret_key=settings.LANGFUSE_SECRET_KEY,
        host=settings.LANGFUSE_HOST.rstrip("/"),
        sample_rate=float(settings.LANGFUSE_SAMPLE_RATE),
        timeout=int(settings.LANGFUSE_TIMEOUT_SECONDS),
        flush_at=int(settings.LANGFUSE_FLUSH_AT),
        flush_interval=float(settings.LANGFUSE_FLUSH_INTERVAL),
        environment=settings.APP_ENV,
        release=settings.VERSION,
        media_upload=bool(settings.LANGFUSE_MEDIA_UPLOAD_ENABLED),
    )


def get_langfuse() -> Langfuse | None:
    """This process's Langfuse client, created on first use; ``None`` when tracing is off.

    Never raises: a client that cannot be created is logged (once) and ``None`` returned.
    """
    state = _current()
    return state.client if state is not None else None


def _current() -> _State | None:
    state = _state
    config = _config()
    if config is None:
        return None
    if state is not None and state.config == config:
        return state
    with _lock:
        return _state_for(config)


def _state_for(config: _Config) -> _State | None:
    global _state, _failed
    state = _state
    if state is not None and state.config == config:
        return state
    if state is not None:
        _state = None
        logger.info("Replacing the Langfuse client (settings changed)")
        # In the background: a run must not wait for the old client's last export.
        threading.Thread(
            target=_shutdown, args=(state,), name="langfuse-retire", daemon=True
        ).start()
    if config.public_key in _keys_used:
        if _failed != config:
            logger.warning(
                "Langfuse is off in this process: the SDK keeps one client per public key and "
                "process, and this key's client was shut down or its settings changed "
                "(restart the process to trace with the new settings)"
            )
        _failed = config
        return None
    try:
        state = _create(config)
    except Exception:
        if _failed != config:
            logger.warning("Langfuse is unavailable: could not create its client", exc_info=True)
        _failed = config
        return None
    _failed = None
    _keys_used.add(config.public_key)
    _state = state
    return state


def _create(config: _Config) -> _State:
    from langfuse import Langfuse
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    sampler = TraceIdRatioBased(config.sample_rate)
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create(
            {
                "service.name": "django-agents",
                "langfuse.environment": config.environment,
                "langfuse.release": config.release,
            }
        ),
        shutdown_on_exit=False,  # _shutdown_at_exit does it, bounded
    )
    # The SDK's media manager reads this variable when the client is made (no argument for it).
    os.environ["LANGFUSE_MEDIA_UPLOAD_ENABLED"] = "true" if config.media_upload else "false"
    client = Langfuse(
        public_key=config.public_key,
        secret_key=config.secret_key,
        base_url=config.host,
        timeout=config.timeout,
        flush_at=config.flush_at,
        flush_interval=config.flush_interval,
        environment=config.environment,
        release=config.release,
        sample_rate=config.sample_rate,
        tracer_provider=provider,
        tracing_enabled=True,
    )
    # (Re-)registered after the client's own exit handler, so that it runs first (atexit is last
    # in, first out): the client's shutdown() unregisters its handler, so the exit waits only as
    # long as our bounded shutdown does.
    atexit.unregister(_shutdown_at_exit)
    atexit.register(_shutdown_at_exit)
    logger.info(
        "Langfuse tracing to %s (sample rate %s, pid %s)",
        config.host,
        config.sample_rate,
        os.getpid(),
    )
    return _State(config=config, client=client, provider=provider)


def _shutdown(state: _State) -> None:
    """Flush and stop ``state``'s exporter and SDK threads (blocking; see ``_bounded``)."""
    try:
        state.client.shutdown()
    except Exception:
        logger.warning("Langfuse shutdown failed", exc_info=True)
    try:
        state.provider.shutdown()
    except Exception:
        logger.warning("Langfuse tracer provider shutdown failed", exc_info=True)


def _bounded(target: Callable[[], None], timeout: float, name: str) -> bool:
    """Run ``target`` on a daemon thread; wait at most ``timeout`` seconds for it."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        logger.warning("Langfuse %s did not finish within %.1fs; giving up on it", name, timeout)
        return False
    return True


def _flush_timeout(state: _State) -> float:
    return 2.0 * state.config.timeout


def flush_langfuse(timeout: float | None = None) -> bool:
    """Send every finished span now; wait at most ``timeout`` s (default: twice the export timeout).

    A no-op (``True``) when this process has no client. ``False`` if the wait timed out; the
    export then goes on in the background. Never raises.
    """
    state = _state
    if state is None:
        return True

    def flush() -> None:
        try:
            state.client.flush()
        except Exception:
            logger.warning("Langfuse flush failed", exc_info=True)

    return _bounded(
        flush, _flush_timeout(state) if timeout is None else timeout, name="langfuse-flush"
    )


def close_langfuse(timeout: float | None = None) -> bool:
    """Flush and shut down this process's client, waiting at most ``timeout`` s (default: twice
    the export timeout). Its public key gets no new client in this process (see the module
    docstring). ``True`` when there was nothing to wait for or the shutdown finished."""
    global _state, _failed
    with _lock:
        state, _state, _failed = _state, None, None
    if state is None:
        return True
    return _bounded(
        lambda: _shutdown(state),
        _flush_timeout(state) if timeout is None else timeout,
        name="langfuse-shutdown",
    )


def _shutdown_at_exit() -> None:
    close_langfuse()


def trace_id_for_run(run_id: uuid.UUID | str) -> str:
    """The Langfuse trace id of a run: 32 lowercase hex chars, always the same for a run.

    The SDK's ``Langfuse.create_trace_id(seed=str(run_id))`` (``sha256(seed)[:16].hex()``).
    """
    from langfuse import Langfuse

    return Langfuse.create_trace_id(seed=str(uuid.UUID(str(run_id))))


def is_sampled(trace_id: str, sample_rate: float | None = None) -> bool:
    """Whether the SDK samples (records and exports) the trace ``trace_id``.

    The SDK's decision: OpenTelemetry ``TraceIdRatioBased(rate)`` on the trace id, that is
    ``int(trace_id, 16) & (2**64 - 1) < round(rate * 2**64)``. ``sample_rate`` defaults to
    ``LANGFUSE_SAMPLE_RATE``; ``LANGFUSE_ENABLED`` is not considered.
    """
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    rate = settings.LANGFUSE_SAMPLE_RATE if sample_rate is None else sample_rate
    result = TraceIdRatioBased(float(rate)).should_sample(None, int(trace_id, 16), TRACE_NAME)
    return result.decision.is_sampled()


def trace_url(trace_id: str | None) -> str | None:
    """The trace's page in the Langfuse UI, or ``None`` without a trace id.

    ``{LANGFUSE_HOST}/project/{LANGFUSE_PROJECT_ID}/traces/{id}`` when the project id is
    configured; otherwise ``{LANGFUSE_HOST}/trace/{id}``, which Langfuse redirects to the trace
    in its project. (The SDK's ``get_trace_url`` asks the API for the project id: a network
    call, so it is not used.)
    """
    if not trace_id:
        return None
    host = settings.LANGFUSE_HOST.rstrip("/")
    project_id = getattr(settings, "LANGFUSE_PROJECT_ID", "")
    if project_id:
        return f"{host}/project/{project_id}/traces/{trace_id}"
    return f"{host}/trace/{trace_id}"


@dataclass
class RunTrace:
    """A run's trace, as seen by the code that runs it.

    ``callbacks``: LangChain callback handlers to add to the graph's ``RunnableConfig`` (empty
    when not traced). ``trace_id``: the Langfuse trace id when this run is recorded, else
    ``None``: store it on ``AgentRun.trace_id``.
    """

    callbacks: list[BaseCallbackHandler] = field(default_factory=list)
    trace_id: str | None = None
    _observation: Any = field(default=None, repr=False)

    @property
    def url(self) -> str | None:
        return trace_url(self.trace_id)

    def set_output(self, output: str | None = None, error: str | None = None) -> None:
        """Record the run's answer (the trace's output) and/or its error (level ERROR)."""
        if self._observation is None:
            return
        try:
            if error:
                self._observation.update(
                    output=output,
                    level="ERROR",
                    status_message=error[:_STATUS_MESSAGE_LIMIT],
                )
            else:
                self._observation.update(output=output)
        except Exception:
            logger.warning("Could not record the run's output on its trace", exc_info=True)


def _json_length(value: Any) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))
    except Exception:
        return _PROPAGATED_VALUE_LIMIT + 1


def _trace_metadata(
    *,
    run_id: uuid.UUID | str,
    model: str,
    correlation_id: str | None,
    metadata: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(all metadata, for the root span; the part Langfuse accepts as trace-level metadata)."""
    ours = {
        "app_env": settings.APP_ENV,
        "run_id": str(run_id),
        "model": model,
        "correlation_id": correlation_id,
    }
    merged = {str(k): v for k, v in (metadata or {}).items()}
    merged.update({k: v for k, v in ours.items() if v is not None and v != ""})
    trace_level = {
        key: value
        for key, value in merged.items()
        if value is not None and key.isascii() and _json_length(value) <= _PROPAGATED_VALUE_LIMIT
    }
    return merged, trace_level


def _tags(tags: Iterable[str]) -> list[str]:
    result: list[str] = []
    for tag in [*settings.LANGFUSE_TAGS, *tags]:
        tag = str(tag).strip()
        if tag and len(tag) <= _PROPAGATED_VALUE_LIMIT and tag not in result:
            result.append(tag)
    return result


@contextmanager
def run_trace(
    *,
    run_id: uuid.UUID | str,
    user_id: Any,
    thread_id: uuid.UUID | str,
    model: str,
    metadata: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    tags: Iterable[str] = (),
    input: Any = None,
) -> Iterator[RunTrace]:
    """Trace one agent run: the root span ``agent_run`` of trace ``trace_id_for_run(run_id)``.

    Trace attributes: user id, session id = thread id, ``LANGFUSE_TAGS`` + ``tags``, metadata
    ``app_env``, ``run_id``, ``model``, ``correlation_id`` and the caller's ``metadata`` (values
    over 200 JSON characters stay on the root span only). ``input`` becomes the trace's input.

    Run the graph inside the block, in the same thread (the LangChain spans find their parent
    through the OpenTelemetry context). Exceptions from the block pass through unchanged (and
    mark the span as failed); the SDK's own never reach the caller.
    """
    state = _current()
    stack = ExitStack()
    current = RunTrace()
    if state is not None:
        try:
            current = _start(
                state,
                stack,
                run_id=run_id,
                user_id=user_id,
                thread_id=thread_id,
                model=model,
                metadata=metadata,
                correlation_id=correlation_id,
                tags=tags,
                input=input,
            )
        except Exception:
            logger.warning(
                "Langfuse tracing failed for run %s; running untraced", run_id, exc_info=True
            )
            _close_quietly(stack)
            stack, current = ExitStack(), RunTrace()

    try:
        yield current
    except BaseException as exc:
        try:
            stack.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as sdk_error:
            if sdk_error is not exc:
                logger.warning("Langfuse failed to end the trace of run %s", run_id, exc_info=True)
        raise
    else:
        _close_quietly(stack)


def _start(
    state: _State,
    stack: ExitStack,
    *,
    run_id: uuid.UUID | str,
    user_id: Any,
    thread_id: uuid.UUID | str,
    model: str,
    metadata: Mapping[str, Any] | None,
    correlation_id: str | None,
    tags: Iterable[str],
    input: Any,
) -> RunTrace:
    """Open the root span and the attribute propagation on ``stack``; the run's ``RunTrace``."""
    from langfuse import propagate_attributes
    from langfuse.langchain import CallbackHandler
    from opentelemetry import trace as otel_trace

    trace_id = trace_id_for_run(run_id)
    all_metadata, trace_metadata = _trace_metadata(
        run_id=run_id, model=model, correlation_id=correlation_id, metadata=metadata
    )
    observation = stack.enter_context(
        state.client.start_as_current_observation(
            trace_context={"trace_id": trace_id},
            name=TRACE_NAME,
            as_type="agent",
            input=input,
            metadata=all_metadata,
        )
    )
    stack.enter_context(
        propagate_attributes(
            user_id=str(user_id),
            session_id=str(thread_id),
            tags=_tags(tags) or None,
            metadata=trace_metadata,
            trace_name=TRACE_NAME,
        )
    )
    if not otel_trace.get_current_span().is_recording():
        # Not sampled (or tracing switched off inside the SDK): nothing will be sent.
        return RunTrace()
    handler = CallbackHandler(public_key=state.config.public_key)
    return RunTrace(callbacks=[handler], trace_id=trace_id, _observation=observation)


def _close_quietly(stack: ExitStack) -> None:
    try:
        stack.close()
    except Exception:
        logger.warning("Langfuse failed to end a trace", exc_info=True)


def import_sdk() -> None:
    """Import the SDK now when tracing is on (at startup, before any fork), not in a first run."""
    if settings.LANGFUSE_ENABLED:
        import langfuse.langchain  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401


__all__ = [
    "TRACE_NAME",
    "RunTrace",
    "close_langfuse",
    "flush_langfuse",
    "get_langfuse",
    "import_sdk",
    "is_sampled",
    "run_trace",
    "trace_id_for_run",
    "trace_url",
]
