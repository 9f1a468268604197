"""An LLM that answers malformed output is an upstream failure: 502 ``llm_unavailable``, as the
README promises, with the run stored as an error."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.errors import AgentRunError, LLMUnavailable, classify_exception
from agents.models import AgentRun
from testing.llm_server import FakeLLMServer, Reply

RUN = "/api/v1/agent/run"

GARBAGE = {
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "truncated-json": b'{"id": "chatcmpl-1", "choices": [{"mess',
    "json-of-the-wrong-shape": b'{"hello": "world"}',
    "json-list": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.django_db
@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_malformed_llm_output_is_a_502(
    llm_server: FakeLLMServer, user_client: APIClient, body: bytes, caplog: Any
) -> None:
    llm_server.enqueue(*[Reply.garbage(body)] * 3)
    with caplog.at_level(logging.WARNING):
        response = user_client.post(RUN, {"message": "hello"}, format="json")
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

    assert response.status_code == HTTPStatus.BAD_GATEWAY, response.content
    payload = response.json()
    assert (payload["code"], payload["status"]) == ("llm_unavailable", "error")
    run = AgentRun.objects.get(pk=payload["run_id"])
    assert run.status == AgentRun.Status.ERROR


def _raised_in(module: str, exc: BaseException) -> BaseException:
    namespace: dict[str, object] = {"__name__": module, "exc": exc}
    try:
        exec("raise exc", namespace)  # a frame whose module is ``module``
    except BaseException as raised:
        return raised
    raise AssertionError("not raised")


def test_classify_exception_blames_the_llm_only_for_errors_inside_its_client() -> None:
    decode_error = json.JSONDecodeError("Expecting value", "<html>", 0)
    assert classify_exception(_raised_in("openai._legacy_response", decode_error)) is LLMUnavailable
    shape_error = TypeError("null value for 'choices'")
    assert classify_exception(_raised_in("langchain_openai.chat_models.base", shape_error)) is (
        LLMUnavailable
    )
    # The same errors raised by our own code are bugs, not the upstream's fault.
    assert classify_exception(_raised_in("agents.graph.nodes", TypeError("bug"))) is AgentRunError
    assert classify_exception(ValueError("bug")) is AgentRunError
