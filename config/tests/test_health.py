from http import HTTPStatus

import httpx
import pytest

from testing.live import run_server

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}


def test_readyz_when_everything_answers(client):
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["checks"] == {"database": "ok", "cache": "ok"}


@pytest.mark.live
@pytest.mark.parametrize(
    ("env", "failed"),
    [
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/agents"}, "database"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMIT_FAIL_OPEN": "false"}, "cache"),
    ],
    ids=["database-down", "redis-down-limits-fail-closed"],
)
def test_readyz_names_what_is_down(env, failed):
    with run_server({"APP_ENV": "local", "DATABASE_URL": "", "REDIS_URL": "", **env}) as url:
        alive = httpx.get(f"{url}/healthz")
        assert alive.status_code == HTTPStatus.OK
        response = httpx.get(f"{url}/readyz", timeout=30)
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        body = response.json()
        assert body["failed"] == [failed]
        assert body["code"] == "not_ready"
        assert failed in body["detail"]


@pytest.mark.live
def test_readyz_reports_redis_down_as_degraded_when_limits_fail_open():
    env = {"APP_ENV": "local", "DATABASE_URL": "", "REDIS_URL": "redis://127.0.0.1:1/0"}
    with run_server({**env, "RATE_LIMIT_FAIL_OPEN": "true"}) as url:
        response = httpx.get(f"{url}/readyz", timeout=30)
        assert response.status_code == HTTPStatus.OK
        assert response.json()["status"] == "degraded"
        assert response.json()["degraded"] == ["cache"]
        assert httpx.head(f"{url}/readyz", timeout=30).status_code == HTTPStatus.OK
