"""HEAD wherever GET answers, OPTIONS never a 500, /readyz truthful about a cache outage."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_works_on_the_probes(client, path):
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == HTTPStatus.OK
    assert head.content == b""


@pytest.mark.parametrize(
    "path", ["/api/v1/users/me", "/api/v1/agent/runs", "/api/v1/agent/threads", "/api/v1/items"]
)
def test_head_works_on_api_gets(user_client: APIClient, path):
    head = user_client.head(path)
    assert head.status_code == user_client.get(path).status_code == HTTPStatus.OK
    assert head.content == b""


@pytest.mark.parametrize("path", ["/api/docs", "/api/schema", "/api/v1/agent/run", "/healthz"])
def test_options_is_never_a_500(client, path):
    response = client.options(path)
    assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR
    if path.startswith("/api/") and response.status_code >= HTTPStatus.BAD_REQUEST:
        assert response["Content-Type"].startswith("application/json")


def test_readyz_reports_a_cache_outage_as_degraded_when_limits_fail_open(client, settings):
    settings.CACHES = UNREACHABLE_REDIS
    settings.RATE_LIMIT_FAIL_OPEN = True
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["cache"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("error")


def test_readyz_is_503_on_a_cache_outage_when_limits_fail_closed(client, settings):
    settings.CACHES = UNREACHABLE_REDIS
    settings.RATE_LIMIT_FAIL_OPEN = False
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["failed"] == ["cache"]


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "garbage"},
        {"cursor": "cD1ub3QtYS1kYXRl"},  # base64 of "p=not-a-date"
        {"cursor": "!!!"},
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "-3"},
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/agent/runs", "/api/v1/agent/threads"])
def test_a_bad_cursor_or_limit_is_a_400(user_client: APIClient, path, query):
    response = user_client.get(path, query)
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == set(query)
