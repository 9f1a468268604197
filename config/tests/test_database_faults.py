"""PostgreSQL terminates the service's idle connections (a restart, a failover, an
idle-session timeout): the next requests still answer 2xx and /readyz stays truthful, because
both pools (Django's and the checkpointer's) check a connection before handing it out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from testing.live import production_env, run_gunicorn

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]


def terminate_other_connections() -> int:
    """Terminate every connection to this test database but our own (never another database)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_requests_after_idle_connections_are_terminated_answer_2xx() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    user = UserFactory()
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    env = production_env(DATABASE_POOL_MIN_SIZE="2", AGENT_CHECKPOINT_POOL_MIN_SIZE="2")

    with run_gunicorn(env, workers=2) as url, httpx.Client(base_url=url, timeout=60) as client:

        def calls() -> list[int]:
            def one(i: int) -> int:
                if i % 4 == 0:
                    run = client.post(
                        "/api/v1/agent/run", json={"message": f"hi {i}"}, headers=headers
                    )
                    return run.status_code
                path = ("/api/v1/agent/runs", "/api/v1/agent/threads", "/readyz")[i % 3]
                return client.get(path, headers=headers).status_code

            with ThreadPoolExecutor(max_workers=6) as pool:
                return list(pool.map(one, range(24)))

        assert set(calls()) == {HTTPStatus.OK}  # every pool now holds idle connections
        assert terminate_other_connections() >= 2
        statuses = calls()
        assert set(statuses) == {HTTPStatus.OK}, statuses
        ready = client.get("/readyz")
        assert ready.status_code == HTTPStatus.OK
        assert ready.json()["checks"]["database"] == "ok"
