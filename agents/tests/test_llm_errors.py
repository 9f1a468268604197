"""An LLM that fails says who failed and how: in the API body, the run record and the log line.

Against the fake OpenAI server answering errors, and a closed port for a refused connection.
No message may carry the API key.
"""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from agents.errors import describe_llm_failure
from agents.models import AgentRun
from testing.llm_server import FakeLLMServer, Reply

RUN = "/api/v1/agent/run"
SECRET = "sk-test-secret-key-never-shown"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline")]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_and_check(
    client: APIClient, caplog: pytest.LogCaptureFixture, *, status: int, expected: list[str]
) -> str:
    with caplog.at_level(logging.INFO, logger="agents"):
        response = client.post(RUN, {"message": "Hello?"}, format="json")
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    for part in expected:
        assert part in detail, detail
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    assert detail in run.error
    log = "\n".join(
        f"{record.getMessage()} {getattr(record, 'error', '')}" for record in caplog.records
    )
    assert detail in log, log
    for text in (detail, run.error, log):
        assert SECRET not in text
    return detail


@pytest.mark.parametrize(
    ("reply", "status", "expected"),
    [
        pytest.param(
            Reply.error(401, f"Incorrect API key provided: {SECRET}"),
            HTTPStatus.BAD_GATEWAY,
            ["HTTP 401", "OPENAI_API_KEY"],
            id="401",
        ),
        pytest.param(
            Reply.error(429, f"Rate limit reached for key {SECRET}"),
            HTTPStatus.BAD_GATEWAY,
            ["HTTP 429", "rate limiting"],
            id="429",
        ),
        pytest.param(
            Reply.error(500, "boom"), HTTPStatus.BAD_GATEWAY, ["HTTP 500", "server error"], id="500"
        ),
        pytest.param(
            Reply.error(503, "overloaded"),
            HTTPStatus.BAD_GATEWAY,
            ["HTTP 503", "server error"],
            id="503",
        ),
        pytest.param(Reply.hang(5), HTTPStatus.GATEWAY_TIMEOUT, ["timeout"], id="timeout"),
    ],
)
def test_a_failing_llm_is_named_with_the_kind_of_failure(
    llm_server: FakeLLMServer,
    settings: SettingsWrapper,
    user_client: APIClient,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    status: int,
    expected: list[str],
) -> None:
    settings.OPENAI_API_KEY = SECRET
    llm_server.enqueue(reply)
    host = llm_server.base_url.split("//", 1)[1].split("/", 1)[0]
    detail = run_and_check(
        user_client, caplog, status=status, expected=["OpenAI", "gpt-test", host, *expected]
    )
    assert detail.startswith("The language model failed to answer: OpenAI model gpt-test at ")


def test_an_unreachable_llm_is_connection_refused(
    offline: SettingsWrapper, user_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    offline.LLM_MODEL_PROVIDER = "openai"
    offline.OPENAI_BASE_URL = f"http://user:{SECRET}@127.0.0.1:{port}/v1?key={SECRET}"
    offline.OPENAI_API_KEY = SECRET
    offline.LLM_MODEL_NAME = "gpt-local"
    offline.LLM_MAX_RETRIES = 0
    offline.LLM_TIMEOUT_SECONDS = 2
    detail = run_and_check(
        user_client,
        caplog,
        status=HTTPStatus.BAD_GATEWAY,
        expected=["OpenAI model gpt-local", f"127.0.0.1:{port}", "connection refused"],
    )
    assert "user" not in detail  # the URL's user info stays out


def test_descriptions_of_other_providers_name_their_settings() -> None:
    import httpx

    request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
    response = httpx.Response(401, request=request)
    exc = httpx.HTTPStatusError(f"401 for key {SECRET}", request=request, response=response)
    text = describe_llm_failure(exc, provider="anthropic", model="claude-x")
    assert text == (
        "The language model failed to answer: Anthropic model claude-x at api.anthropic.com "
        "refused the credentials (HTTP 401 unauthorized): check ANTHROPIC_API_KEY."
    )
    text = describe_llm_failure(RuntimeError(SECRET), provider="azure", model="dep")
    assert (
        text == "The language model failed to answer: Azure OpenAI model dep failed (RuntimeError)."
    )
