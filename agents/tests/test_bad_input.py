"""Hostile run input is a JSON 400 and stores nothing: what PostgreSQL would refuse (a 500)
is refused first, by the JSON parser and by the run input serializer."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from agents.models import AgentRun, AgentThread

RUN = "/api/v1/agent/run"

NESTED = '{"message": "hi", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
BAD_BODIES = {
    "deep-nesting": NESTED,
    "nesting-over-the-metadata-limit": json.dumps(
        {"message": "hi", "metadata": {"a": {"b": {"c": [[[[[[[[[1]]]]]]]]]}}}}
    ),
    "1e999": '{"message": "hi", "metadata": {"n": 1e999}}',
    "-1e999": '{"message": "hi", "metadata": {"n": [-1e999]}}',
    "NaN": '{"message": "hi", "metadata": {"n": NaN}}',
    "Infinity": '{"message": "hi", "metadata": {"n": Infinity}}',
    "lone-surrogate-value": '{"message": "hi", "metadata": {"s": "\\ud800"}}',
    "lone-surrogate-key": '{"message": "hi", "metadata": {"\\udfff": 1}}',
    "lone-surrogate-message": '{"message": "hi \\ud83d"}',
    "nul-in-key": '{"message": "hi", "metadata": {"a\\u0000b": 1}}',
    "nul-in-value": '{"message": "hi", "metadata": {"a": "x\\u0000"}}',
    "nul-in-message": '{"message": "hi\\u0000there"}',
}


@pytest.mark.django_db
@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_unstorable_json_is_a_400_and_stores_nothing(
    offline: object, user_client: APIClient, body: str
) -> None:
    response = user_client.generic("POST", RUN, body, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] in ("parse_error", "invalid")
    assert not AgentRun.objects.exists()
    assert not AgentThread.objects.exists()


@pytest.mark.django_db
def test_storable_metadata_still_runs(offline: object, user_client: APIClient) -> None:
    metadata = {"n": 1.25, "s": "caf\u00e9 \U0001f600", "deep": {"a": {"b": [1, 2]}}}
    response = user_client.post(RUN, {"message": "hi", "metadata": metadata}, format="json")

    assert response.status_code == HTTPStatus.OK, response.content
    assert AgentRun.objects.get().metadata == metadata
