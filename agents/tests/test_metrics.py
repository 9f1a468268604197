"""Prometheus metrics: the agents.metrics API, runs through ``agents.runner``, and ``GET /metrics``.

Values are read from this process's registry as deltas (other tests count too).
"""

from __future__ import annotations

import importlib
import uuid
from http import HTTPStatus
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from prometheus_client import REGISTRY

from accounts.tests.factories import UserFactory
from agents import metrics
from agents.errors import LLMTimeout, LLMUnavailable
from agents.llm.offline import OfflineChatModel
from agents.models import AgentRun
from agents.runner import agent_run
from testing.llm_server import FakeLLMServer, Reply
from testing.metrics import sample

USERS_QUESTION = "What users are in the system?"


class Deltas:
    """Samples now, to compare with later: ``deltas.of(name, **labels)``."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.before = {self._key(n, lb): sample(n, **lb) for n, lb in series}

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    def of(self, name: str, **labels: str) -> float:
        return sample(name, **labels) - self.before[self._key(name, labels)]


def series(name: str, **labels: str) -> tuple[str, dict[str, str]]:
    return name, labels


# -- the API the service calls --------------------------------------------------------------


def test_runs_reported_through_the_api_are_counted(settings: Any) -> None:
    settings.LLM_PRICES = {"gpt-4o-mini": {"prompt": 0.00015, "completion": 0.0006}}
    watched = [
        series("agent_invocations_total"),
        *(series("agent_invocations_by_status_total", status=s) for s in metrics.STATUSES),
        series("agent_tokens_total"),
        series("agent_tokens_by_model_total", model="gpt-4o-mini", kind="prompt"),
        series("agent_tokens_by_model_total", model="gpt-4o-mini", kind="completion"),
        series("agent_execution_duration_seconds_count"),
        series("agent_execution_duration_seconds_sum"),
        series("agent_execution_duration_seconds_bucket", le="1.0"),
        series("agent_prompt_tokens_count"),
        series("agent_prompt_tokens_sum"),
        series("agent_completion_tokens_sum"),
        series("agent_completion_tokens_bucket", le="16.0"),
        series("agent_active_executions"),
    ]
    deltas = Deltas(*watched)

    outcomes = ["completed"] * 3 + ["failed", "timeout"]
    for outcome in outcomes:
        metrics.run_started()
        metrics.run_finished(
            status=outcome,
            duration_s=0.5,
            prompt_tokens=100,
            completion_tokens=10,
            # A dated version counts under the priced name.
            model="gpt-4o-mini-2024-07-18",
        )
    metrics.run_started()  # still running

    assert deltas.of("agent_invocations_total") == 6
    assert deltas.of("agent_invocations_by_status_total", status="completed") == 3
    assert deltas.of("agent_invocations_by_status_total", status="failed") == 1
    assert deltas.of("agent_invocations_by_status_total", status="timeout") == 1
    assert deltas.of("agent_active_executions") == 1
    assert deltas.of("agent_execution_duration_seconds_count") == 5
    assert deltas.of("agent_execution_duration_seconds_sum") == pytest.approx(2.5)
    assert deltas.of("agent_execution_duration_seconds_bucket", le="1.0") == 5
    assert deltas.of("agent_tokens_total") == 5 * 110
    assert deltas.of("agent_tokens_by_model_total", model="gpt-4o-mini", kind="prompt") == 500
    assert deltas.of("agent_tokens_by_model_total", model="gpt-4o-mini", kind="completion") == 50
    assert deltas.of("agent_prompt_tokens_count") == 5
    assert deltas.of("agent_prompt_tokens_sum") == 500
    assert deltas.of("agent_completion_tokens_sum") == 50
    assert deltas.of("agent_completion_tokens_bucket", le="16.0") == 5

    metrics.run_finished(
        status="completed", duration_s=1, prompt_tokens=None, completion_tokens=None, model="x"
    )
    assert deltas.of("agent_active_executions") == 0
    # Unreported usage observes no token histogram.
    assert deltas.of("agent_prompt_tokens_count") == 5


def test_the_api_never_raises_and_files_odd_input_sensibly() -> None:
    deltas = Deltas(
        series("agent_invocations_by_status_total", status="failed"),
        series("agent_tokens_total"),
        series("agent_tool_calls_total", tool="unknown", status="error"),
    )
    metrics.run_started()
    metrics.run_finished(
        status="exploded",  # not a status: counted as failed
        duration_s=-3,
        prompt_tokens=-5,  # nonsense counts are ignored
        completion_tokens="many",
        model="",
    )
    metrics.run_finished(
        status="completed",
        duration_s="slow",  # swallowed (logged), not raised
        prompt_tokens=1,
        completion_tokens=1,
        model="m",
    )
    metrics.tool_called(tool="", ok=False)
    metrics.run_started()  # balance the second run_finished for the active gauge

    assert deltas.of("agent_invocations_by_status_total", status="failed") == 1
    assert deltas.of("agent_tokens_total") == 0
    assert deltas.of("agent_tool_calls_total", tool="unknown", status="error") == 1


def test_tool_calls_count_by_tool_and_status() -> None:
    deltas = Deltas(
        series("agent_tool_calls_total", tool="list_users", status="ok"),
        series("agent_tool_calls_total", tool="list_users", status="error"),
        series("agent_tool_calls_total", tool="http_get", status="error"),
    )
    for _ in range(3):
        metrics.tool_called(tool="list_users", ok=True)
    metrics.tool_called(tool="list_users", ok=False)
    metrics.tool_called(tool="http_get", ok=False)

    assert deltas.of("agent_tool_calls_total", tool="list_users", status="ok") == 3
    assert deltas.of("agent_tool_calls_total", tool="list_users", status="error") == 1
    assert deltas.of("agent_tool_calls_total", tool="http_get", status="error") == 1


def test_model_labels_follow_the_price_list(settings: Any) -> None:
    settings.LLM_PRICES = {
        "gpt-4o": {"prompt": 1.0},
        "gpt-4o-mini": {"prompt": 0.1},
    }
    assert metrics.model_label("gpt-4o-2024-08-06") == "gpt-4o"
    assert metrics.model_label("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert metrics.model_label("gpt-4o-mini") == "gpt-4o-mini"
    assert metrics.model_label("claude-3-5-haiku-20241022") == "claude-3-5-haiku-20241022"
    assert metrics.model_label(None) == "unknown"


def test_the_llm_callback_times_each_request_by_model() -> None:
    timing = metrics.LLMTimingCallback()
    deltas = Deltas(
        series("agent_llm_request_duration_seconds_count", model="offline"),
        series("agent_llm_request_duration_seconds_count", model="gpt-test"),
    )
    model = OfflineChatModel(model_name="offline", stream_delay=0.0)
    model.invoke([HumanMessage(content="hello")], config={"callbacks": [timing]})
    model.invoke([HumanMessage(content="again")], config={"callbacks": [timing]})

    with FakeLLMServer() as server:
        server.enqueue(Reply.text("hi"), Reply.error(500, "boom"))
        openai = ChatOpenAI(
            base_url=server.base_url, api_key="test", model="gpt-test", max_retries=0
        )
        openai.invoke("hello", config={"callbacks": [timing]})
        with pytest.raises(Exception, match="boom"):
            openai.invoke("hello", config={"callbacks": [timing]})

    assert deltas.of("agent_llm_request_duration_seconds_count", model="offline") == 2
    # The failed request is timed too.
    assert deltas.of("agent_llm_request_duration_seconds_count", model="gpt-test") == 2
    assert not timing._pending


def test_the_llm_callback_falls_back_to_the_response_model() -> None:
    timing = metrics.LLMTimingCallback()
    before = sample("agent_llm_request_duration_seconds_count", model="from-response")
    run_id = uuid.uuid4()
    timing.on_chat_model_start({}, [[]], run_id=run_id, invocation_params={})

    class Response:
        llm_output = {"model_name": "from-response"}
        generations: list[Any] = []

    timing.on_llm_end(Response(), run_id=run_id)
    timing.on_llm_end(Response(), run_id=run_id)  # a second end is ignored
    after = sample("agent_llm_request_duration_seconds_count", model="from-response")
    assert after - before == 1


def test_startup_exports_app_info_and_prices(settings: Any) -> None:
    settings.LLM_PRICES = {"some-model": {"prompt": 0.5, "completion": 2.0}}
    metrics.startup()
    info = sample("app_info", version=settings.VERSION, env=settings.APP_ENV)
    assert info == 1
    price = "agent_model_price_per_1k_tokens"
    assert sample(price, model="some-model", kind="prompt") == 0.5
    assert sample(price, model="some-model", kind="completion") == 2.0
    # Every status has a series from the start, so that error ratios exist before any failure.
    for status in metrics.STATUSES:
        labels = {"status": status}
        assert REGISTRY.get_sample_value("agent_invocations_by_status_total", labels) is not None


# -- real runs through the runner -------------------------------------------------------------


def _run_series(model: str) -> list[tuple[str, dict[str, str]]]:
    return [
        series("agent_invocations_total"),
        *(series("agent_invocations_by_status_total", status=s) for s in metrics.STATUSES),
        series("agent_tokens_total"),
        series("agent_tokens_by_model_total", model=model, kind="prompt"),
        series("agent_tokens_by_model_total", model=model, kind="completion"),
        series("agent_execution_duration_seconds_count"),
        series("agent_prompt_tokens_count"),
        series("agent_active_executions"),
        series("agent_tool_calls_total", tool="list_users", status="ok"),
        series("agent_tool_calls_total", tool="http_get", status="error"),
        series("agent_llm_request_duration_seconds_count", model=model),
    ]


@pytest.mark.usefixtures("offline")
@pytest.mark.django_db(transaction=True)
def test_n_runs_through_the_runner_are_counted() -> None:
    admin = UserFactory(is_superuser=True, is_staff=True)
    deltas = Deltas(*_run_series("offline"))
    runs = 4

    results = [agent_run(user=admin, message=USERS_QUESTION) for _ in range(runs)]
    # A tool that answers an error: the run still completes.
    results.append(agent_run(user=admin, message="Please fetch http://127.0.0.1:1/secret"))

    assert [r.status for r in results] == ["success"] * (runs + 1)
    recorded = AgentRun.objects.filter(pk__in=[r.pk for r in results])
    prompt = sum(r.prompt_tokens or 0 for r in recorded)
    completion = sum(r.completion_tokens or 0 for r in recorded)
    assert prompt > 0
    assert completion > 0

    assert deltas.of("agent_invocations_total") == runs + 1
    assert deltas.of("agent_invocations_by_status_total", status="completed") == runs + 1
    assert deltas.of("agent_invocations_by_status_total", status="failed") == 0
    assert deltas.of("agent_active_executions") == 0
    assert deltas.of("agent_execution_duration_seconds_count") == runs + 1
    assert deltas.of("agent_prompt_tokens_count") == runs + 1
    assert deltas.of("agent_tokens_by_model_total", model="offline", kind="prompt") == prompt
    assert (
        deltas.of("agent_tokens_by_model_total", model="offline", kind="completion") == completion
    )
    assert deltas.of("agent_tokens_total") == prompt + completion
    assert deltas.of("agent_tool_calls_total", tool="list_users", status="ok") == runs
    assert deltas.of("agent_tool_calls_total", tool="http_get", status="error") == 1
    # Planner and executor calls: at least two LLM requests a run.
    assert deltas.of("agent_llm_request_duration_seconds_count", model="offline") >= 2 * (runs + 1)


@pytest.mark.django_db(transaction=True)
def test_failed_and_timed_out_runs_are_counted_by_status(llm_server: FakeLLMServer) -> None:
    user = UserFactory()
    deltas = Deltas(*_run_series("gpt-test"))
    llm_server.enqueue(Reply.error(500, "upstream broke"))
    with pytest.raises(LLMUnavailable):
        agent_run(user=user, message="hello")
    llm_server.enqueue(Reply.hang(3.0))  # the fixture's LLM timeout is 2 s
    with pytest.raises(LLMTimeout):
        agent_run(user=user, message="hello again")

    assert deltas.of("agent_invocations_total") == 2
    assert deltas.of("agent_invocations_by_status_total", status="failed") == 1
    assert deltas.of("agent_invocations_by_status_total", status="timeout") == 1
    assert deltas.of("agent_invocations_by_status_total", status="completed") == 0
    assert deltas.of("agent_active_executions") == 0
    assert deltas.of("agent_llm_request_duration_seconds_count", model="gpt-test") == 2


# -- GET /metrics -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_endpoint_serves_every_family(client: Any) -> None:
    client.get("/healthz")
    client.get("/readyz")  # a database query and cache reads
    metrics.tool_called(tool="list_users", ok=True)

    response = client.get("/metrics")

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in (
        "agent_invocations_total",
        "agent_invocations_by_status_total",
        "agent_tokens_total",
        "agent_tokens_by_model_total",
        "agent_execution_duration_seconds_bucket",
        "agent_prompt_tokens_bucket",
        "agent_completion_tokens_bucket",
        "agent_active_executions",
        "agent_tool_calls_total",
        "agent_llm_request_duration_seconds",
        "agent_model_price_per_1k_tokens",
        "app_info",
        "ratelimit_rejections_total",
        "ratelimit_backend_errors_total",
        # django-prometheus: requests, database, cache
        "django_http_requests_total_by_method_total",
        "django_http_responses_total_by_status_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "django_db_execute_total",
        "django_cache_get_total",
    ):
        assert f"\n{name}" in text or f"# TYPE {name}" in text, name
    assert 'agent_invocations_by_status_total{status="timeout"}' in text
    assert "app_info{" in text


def test_metrics_speaks_openmetrics_when_asked(client: Any) -> None:
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_a_bearer_token_protects_metrics(client: Any, settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = "s3cret-scrape-token"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")

    assert missing.status_code == HTTPStatus.UNAUTHORIZED
    assert missing.json()["code"] == "not_authenticated"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == HTTPStatus.UNAUTHORIZED
    assert right.status_code == HTTPStatus.OK
    assert b"agent_invocations_total" in right.content


def test_allowed_networks_protect_metrics(client: Any, settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]

    refused = client.get("/metrics")  # the test client is 127.0.0.1
    inside = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    mapped = client.get("/metrics", REMOTE_ADDR="::ffff:10.1.2.3")
    garbage = client.get("/metrics", REMOTE_ADDR="not-an-address")

    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json() == {
        "detail": "Metrics are not served to this address.",
        "code": "forbidden",
    }
    assert inside.status_code == HTTPStatus.OK
    assert mapped.status_code == HTTPStatus.OK
    assert garbage.status_code == HTTPStatus.FORBIDDEN

    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.METRICS_BEARER_TOKEN = "t"
    assert client.get("/metrics").status_code == HTTPStatus.UNAUTHORIZED
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").status_code == HTTPStatus.OK


def test_metrics_can_be_switched_off(client: Any, settings: Any) -> None:
    settings.METRICS_ENABLED = False
    response = client.get("/metrics")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "not_found"
    assert client.post("/metrics").status_code == HTTPStatus.METHOD_NOT_ALLOWED


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_PRICES", "not json"),
        ("LLM_PRICES", '{"gpt-4o": 0.1}'),
        ("LLM_PRICES", '{"gpt-4o": {"prompt": -1}}'),
        ("LLM_PRICES", '{"gpt-4o": {"input": 0.1}}'),
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network"),
    ],
)
def test_bad_metrics_settings_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    import config.settings.metrics as module

    monkeypatch.setenv(name, value)
    try:
        with pytest.raises(ImproperlyConfigured, match=name):
            importlib.reload(module)
    finally:
        monkeypatch.delenv(name)
        importlib.reload(module)


def test_metrics_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    import config.settings.metrics as module

    monkeypatch.setenv("LLM_PRICES", '{"m": {"prompt": 0.001, "completion": 0.002}}')
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 192.168.1.7")
    try:
        importlib.reload(module)
        assert module.LLM_PRICES == {"m": {"prompt": 0.001, "completion": 0.002}}
        assert module.METRICS_ALLOWED_NETWORKS == ["10.0.0.0/8", "192.168.1.7"]
    finally:
        monkeypatch.delenv("LLM_PRICES")
        monkeypatch.delenv("METRICS_ALLOWED_NETWORKS")
        importlib.reload(module)
    assert "gpt-4o-mini" in module.LLM_PRICES
