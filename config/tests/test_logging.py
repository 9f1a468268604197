"""JSON logs with correlation ids: one request id finds the request's lines and its run."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from config.logging import ContextFilter, JsonContextFormatter, bind_log_context
from testing.live import database_env, run_server, server_log_path


def test_json_lines_carry_the_context_fields():
    record = logging.LogRecord("agents.runner", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    formatter = JsonContextFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )
    with bind_log_context(correlation_id="req-1", run_id="run-1", user_id=None):
        ContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "hello x"
    assert line["level"] == "INFO"
    assert line["logger"] == "agents.runner"
    assert line["correlation_id"] == "req-1"
    assert line["run_id"] == "run-1"
    assert "user_id" not in line  # unknown fields are left out, not "-"
    assert line["timestamp"].endswith("+00:00")


@pytest.mark.django_db
def test_request_id_is_echoed_or_generated(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    # Anything that isn't a sane token is replaced rather than echoed into logs and headers.
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID="x\nInjected: 1" + "a" * 200)
    assert hostile["X-Request-ID"] != "x\nInjected: 1"
    assert len(hostile["X-Request-ID"]) == 32


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_one_request_id_finds_the_log_lines_and_the_run(django_db_setup):
    user = UserFactory()
    token = AccessToken.for_user(user)
    env = {**database_env(), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    with run_server(env, keep_log=True) as url:
        response = httpx.post(
            f"{url}/api/v1/agent/run",
            json={"message": "show my items"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-me-42"},
            timeout=30,
        )
        streamed = httpx.post(
            f"{url}/api/v1/agent/run/stream",
            json={"message": "show my items"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "stream-me-43"},
            timeout=30,
        )
    assert response.status_code == HTTPStatus.OK
    assert response.headers["X-Request-ID"] == "trace-me-42"
    assert streamed.status_code == HTTPStatus.OK
    assert "event: done" in streamed.text
    log_path = server_log_path(url)
    lines = []
    for raw in log_path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))  # every line the app writes parses as JSON
    log_path.unlink()
    mine = [line for line in lines if line.get("correlation_id") == "trace-me-42"]
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    run_lines = [line for line in mine if line.get("event") == "agent_run"]
    assert len(run_lines) == 1
    assert run_lines[0]["run_id"] == str(run.id)
    assert run_lines[0]["thread_id"] == str(run.thread_id)
    assert run_lines[0]["user_id"] == str(user.id)
    # A streamed run is produced after its view returned: its line has the request's id too.
    streamed_lines = [
        line
        for line in lines
        if line.get("event") == "agent_run" and line.get("correlation_id") == "stream-me-43"
    ]
    assert len(streamed_lines) == 1, [line for line in lines if line.get("event") == "agent_run"]
    access = [line for line in mine if line["logger"] == "config.access"]
    assert access[0]["status"] == HTTPStatus.OK
    # No prompt text, tokens or secrets at INFO.
    text = json.dumps(mine)
    assert "show my items" not in text
    assert str(token) not in text


def _handlers_reached(record: logging.LogRecord) -> list[logging.Handler]:
    """The handlers a record logged on its logger would be written by (not pytest's own)."""
    reached: list[logging.Handler] = []
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        reached += [
            handler
            for handler in logger.handlers
            if not type(handler).__module__.startswith("_pytest")
            and record.levelno >= handler.level
            and handler.filter(record)
        ]
        if not logger.propagate:
            break
        logger = logger.parent
    return reached


@pytest.mark.django_db
def test_django_request_errors_are_logged_once_with_the_request_id(client, settings):
    """Django logs a 4xx/5xx after the middleware: once, formatted, with the request's id."""
    settings.DEBUG = True  # Django's own console handler only writes with DEBUG on
    response = client.get("/api/v1/no-such-endpoint", HTTP_X_REQUEST_ID="req-404")
    assert response.status_code == HTTPStatus.NOT_FOUND
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Gone", (), None)
    record.request = response.wsgi_request

    handlers = _handlers_reached(record)
    assert len(handlers) == 1, handlers
    assert "req-404" in handlers[0].format(record)
