"""Prometheus metrics of agent runs, and the small API that counts them.

``agents.runner`` reports each run's lifecycle through :func:`run_started`,
:func:`run_finished` and :func:`tool_called`, and times every LLM request with an
:class:`LLMTimingCallback` in the run's callbacks. ``config.metrics_view`` serves them on
``GET /metrics`` together with django-prometheus's request, database and cache metrics and the
rate-limit counters of ``config.metrics``.

Every function here is cheap and never raises: metrics must not break a run.

Multi-process servers (gunicorn with several workers): with ``PROMETHEUS_MULTIPROC_DIR`` set in
the environment before the server starts, prometheus_client writes each process's values to
files there and ``/metrics`` adds them up (``agent_active_executions`` counts live processes
only). See ``docker/gunicorn.conf.py``.

Model labels: the name the run reports, except that a dated version of a model that has an
``LLM_PRICES`` entry (``gpt-4o-mini-2024-07-18``) is counted under that entry
(``gpt-4o-mini``), so that cost = tokens x price matches in PromQL.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from django.conf import settings
from django.db.models import Count
from langchain_core.callbacks import BaseCallbackHandler
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

STATUSES = ("completed", "failed", "timeout", "interrupted")
TOKEN_KINDS = ("prompt", "completion")
UNKNOWN_MODEL = "unknown"

# A whole run: from a second (an offline answer) to minutes (several tools, slow LLM calls).
RUN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
# One LLM request: tens of milliseconds (cached, small) to the LLM timeout (60 s by default).
LLM_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
# Tokens per run: a one-line answer to a long thread with tool output (powers of two).
TOKEN_BUCKETS = tuple(float(2**n) for n in range(4, 18))  # 16 .. 131072

AGENT_INVOCATIONS = Counter("agent_invocations_total", "Agent runs started.")
AGENT_INVOCATIONS_BY_STATUS = Counter(
    "agent_invocations_by_status_total",
    "Agent runs finished, by outcome: completed, failed, timeout (the LLM timed out) or "
    "interrupted (paused for a person's approval).",
    ["status"],
)
AGENT_TOKENS = Counter(
    "agent_tokens_total", "Tokens used by agent runs (prompt + completion), as the LLM reported."
)
AGENT_TOKENS_BY_MODEL = Counter(
    "agent_tokens_by_model_total",
    "Tokens used by agent runs, by model and kind (prompt or completion).",
    ["model", "kind"],
)
AGENT_EXECUTION_DURATION = Histogram(
    "agent_execution_duration_seconds",
    "Wall time of an agent run, start to finish, whatever the outcome.",
    buckets=RUN_DURATION_BUCKETS,
)
AGENT_PROMPT_TOKENS = Histogram(
    "agent_prompt_tokens", "Prompt tokens per agent run.", buckets=TOKEN_BUCKETS
)
AGENT_COMPLETION_TOKENS = Histogram(
    "agent_completion_tokens", "Completion tokens per agent run.", buckets=TOKEN_BUCKETS
)
AGENT_ACTIVE_EXECUTIONS = Gauge(
    "agent_active_executions",
    "Agent runs executing now.",
    multiprocess_mode="livesum",
)
AGENT_TOOL_CALLS = Counter(
    "agent_tool_calls_total",
    "Tool calls made by agent runs, by tool and status (ok or error).",
    ["tool", "status"],
)
AGENT_LLM_REQUEST_DURATION = Histogram(
    "agent_llm_request_duration_seconds",
    "Duration of one LLM request (a planner or executor call), failed ones included.",
    ["model"],
    buckets=LLM_DURATION_BUCKETS,
)
AGENT_MODEL_PRICE = Gauge(
    "agent_model_price_per_1k_tokens",
    "Price per 1000 tokens by model and kind (prompt or completion), from LLM_PRICES.",
    ["model", "kind"],
    multiprocess_mode="mostrecent",
)
# An Info metric in effect; a Gauge because prometheus_client's Info has no multiprocess mode.
APP_INFO = Gauge(
    "app_info", "The application: version and environment.", ["version", "env"],
    multiprocess_mode="max",
)  # fmt: skip

# Approvals: what people decided on the calls that waited for them.
APPROVAL_DECISIONS = ("approve", "edit", "reject", "expired", "superseded")
AGENT_APPROVALS = Counter(
    "agent_approvals_total",
    "Decisions on tool calls that waited for approval: approve, edit, reject, expired (not "
    "decided within AGENT_APPROVAL_TTL_HOURS) or superseded (a newer message replaced them).",
    ["decision"],
)

# Run control: background runs and runs queued behind a busy thread.
AGENT_RUNS_QUEUED = Counter(
    "agent_runs_queued_total", "Agent runs that started pending (background or queued)."
)
# From a few milliseconds (a free worker) to minutes (a long run ahead on the thread).
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
AGENT_RUN_QUEUE_WAIT = Histogram(
    "agent_run_queue_wait_seconds",
    "Time a pending run waited, from its creation until it started executing.",
    buckets=QUEUE_WAIT_BUCKETS,
)

P = ParamSpec("P")
R = TypeVar("R")


def _never_raises(func: Callable[P, R]) -> Callable[P, R | None]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return func(*args, **kwargs)
        except Exception:  # a metric must never break a run
            logger.warning("metrics: %s failed", func.__name__, exc_info=True)
            return None

    return wrapper


def _prices() -> Mapping[str, Mapping[str, float]]:
    prices = getattr(settings, "LLM_PRICES", None)
    return prices if isinstance(prices, Mapping) else {}


def model_label(model: str | None) -> str:
    """The ``model`` label for a model name (see the module docstring)."""
    name = str(model or "").strip()[:100] or UNKNOWN_MODEL
    prices = _prices()
    if name in prices:
        return name
    # gpt-4o-2024-08-06 -> gpt-4o (not gpt-4o-mini): the longest priced name it extends.
    matches = [key for key in prices if name.startswith(f"{key}-")]
    return max(matches, key=len) if matches else name


def _tokens(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if count >= 0 else None


@_never_raises
def run_started() -> None:
    """A run begins: counts an invocation and one more active execution."""
    AGENT_INVOCATIONS.inc()
    AGENT_ACTIVE_EXECUTIONS.inc()


@_never_raises
def run_finished(
    *,
    status: str,
    duration_s: float,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    model: str,
) -> None:
    """A run ends (call once per ``run_started``). ``status``: completed, failed, timeout or
    interrupted (anything else counts as failed). Tokens are the run's totals; ``None``: not
    reported."""
    AGENT_ACTIVE_EXECUTIONS.dec()
    AGENT_INVOCATIONS_BY_STATUS.labels(status=status if status in STATUSES else "failed").inc()
    AGENT_EXECUTION_DURATION.observe(max(float(duration_s), 0.0))
    label = model_label(model)
    for kind, value, histogram in (
        ("prompt", _tokens(prompt_tokens), AGENT_PROMPT_TOKENS),
        ("completion", _tokens(completion_tokens), AGENT_COMPLETION_TOKENS),
    ):
        if value is None:
            continue
        histogram.observe(value)
        AGENT_TOKENS.inc(value)
        AGENT_TOKENS_BY_MODEL.labels(model=label, kind=kind).inc(value)


@_never_raises
def approval_decided(*, decision: str) -> None:
    AGENT_APPROVALS.labels(decision=decision if decision in APPROVAL_DECISIONS else "reject").inc()


@_never_raises
def run_queued() -> None:
    """A run was recorded ``pending`` (the background executor will start it)."""
    AGENT_RUNS_QUEUED.inc()


@_never_raises
def run_dequeued(*, wait_s: float | None) -> None:
    """A pending run started after ``wait_s`` seconds (None: it was cancelled before)."""
    if wait_s is not None:
        AGENT_RUN_QUEUE_WAIT.observe(max(wait_s, 0.0))


class RunsByStatusCollector:
    """``agent_runs{status}``: the runs pending and running now, counted in the database at
    scrape time (every process and worker included; the partial index of active runs makes
    it cheap). Finished runs are counted by ``agent_invocations_by_status_total``."""

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        from agents.models import AgentRun

        family = GaugeMetricFamily(
            "agent_runs", "Agent runs pending or running now, by status.", labels=["status"]
        )
        counts: dict[str, int] = {str(status): 0 for status in AgentRun.ACTIVE}
        try:
            rows = (
                AgentRun.objects.filter(status__in=AgentRun.ACTIVE)
                .values_list("status")
                .annotate(n=Count("id"))
            )
            counts.update({str(status): int(n) for status, n in rows})
        except Exception as exc:  # a scrape must answer while the database is away
            logger.warning("Counting runs by status failed: %s", exc)
            return []
        for status, count in counts.items():
            family.add_metric([str(status)], count)
        return [family]


@_never_raises
def tool_called(*, tool: str, ok: bool) -> None:
    """A tool call answered: ``ok`` False for an error result."""
    name = str(tool or "").strip()[:100] or "unknown"
    AGENT_TOOL_CALLS.labels(tool=name, status="ok" if ok else "error").inc()


@_never_raises
def observe_llm_request(*, model: str | None, duration_s: float) -> None:
    AGENT_LLM_REQUEST_DURATION.labels(model=model_label(model)).observe(max(duration_s, 0.0))


@_never_raises
def startup() -> None:
    """Once per process (``AgentsConfig.ready``): ``app_info``, the prices, and zero-valued
    series for the label values known in advance, so that rates and ratios exist (as 0)
    before the first failure."""
    APP_INFO.labels(version=str(settings.VERSION), env=str(settings.APP_ENV)).set(1)
    for model, prices in _prices().items():
        for kind in TOKEN_KINDS:
            if kind in prices:
                AGENT_MODEL_PRICE.labels(model=model, kind=kind).set(float(prices[kind]))
    for status in STATUSES:
        AGENT_INVOCATIONS_BY_STATUS.labels(status=status)
    for decision in APPROVAL_DECISIONS:
        AGENT_APPROVALS.labels(decision=decision)
    configured = model_label(getattr(settings, "LLM_MODEL_NAME", None))
    for kind in TOKEN_KINDS:
        AGENT_TOKENS_BY_MODEL.labels(model=configured, kind=kind)
    AGENT_LLM_REQUEST_DURATION.labels(model=configured)


def _model_from_start(metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str | None:
    name = (metadata or {}).get("ls_model_name")
    if isinstance(name, str) and name:
        return name
    params = kwargs.get("invocation_params") or {}
    for key in ("model", "model_name", "azure_deployment", "deployment_name"):
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _model_from_response(response: Any) -> str | None:
    output = getattr(response, "llm_output", None) or {}
    name = output.get("model_name") or output.get("model")
    if isinstance(name, str) and name:
        return name
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            message = getattr(generation, "message", None)
            meta = getattr(message, "response_metadata", None) or {}
            name = meta.get("model_name") or meta.get("model")
            if isinstance(name, str) and name:
                return name
    return None


class LLMTimingCallback(BaseCallbackHandler):
    """Observes ``agent_llm_request_duration_seconds{model}`` for every LLM request of a run.

    Put one in the run's ``callbacks`` (one instance may serve any number of runs and threads).
    The model is the one the request asked for, else the one the response names.
    """

    run_inline = True  # async runs too: time it where it happens, not on an executor
    MAX_PENDING = 10_000  # requests that never end (a crash without callbacks) can't pile up

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[UUID, tuple[float, str | None]] = OrderedDict()

    def _start(self, run_id: UUID, metadata: Mapping[str, Any] | None, kwargs: Any) -> None:
        try:
            model = _model_from_start(metadata, kwargs)
            with self._lock:
                self._pending[run_id] = (time.perf_counter(), model)
                while len(self._pending) > self.MAX_PENDING:
                    self._pending.popitem(last=False)
        except Exception:
            logger.warning("metrics: LLM start not recorded", exc_info=True)

    def _end(self, run_id: UUID, response: Any = None) -> None:
        try:
            with self._lock:
                started = self._pending.pop(run_id, None)
            if started is None:
                return
            began, model = started
            if model is None and response is not None:
                model = _model_from_response(response)
            observe_llm_request(model=model, duration_s=time.perf_counter() - began)
        except Exception:
            logger.warning("metrics: LLM end not recorded", exc_info=True)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)


__all__ = [
    "STATUSES",
    "LLMTimingCallback",
    "model_label",
    "run_finished",
    "run_started",
    "startup",
    "tool_called",
]
