"""core.postgresql.pool on a real PostgreSQL: a pool whose idle connections the server has
terminated together hands out a working connection at once, and Django's connections come
from the backend that checks them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from psycopg.conninfo import make_conninfo

from agents.checkpointer import postgres_conninfo
from core.postgresql.pool import CheckedConnectionPool

pytestmark = [pytest.mark.services, pytest.mark.django_db]

IDLE = 6


@pytest.fixture
def pool() -> Iterator[tuple[CheckedConnectionPool[Any], str]]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    name = f"pool-test-{uuid.uuid4().hex[:8]}"
    checked: CheckedConnectionPool[Any] = CheckedConnectionPool(
        make_conninfo(postgres_conninfo(), application_name=name),
        min_size=IDLE,
        max_size=IDLE + 2,
        timeout=10,
        open=True,
    )
    checked.wait(timeout=10)
    yield checked, name
    checked.close()


def terminate(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            [application_name],
        )
        return int(cursor.fetchone()[0])


def test_a_pool_whose_idle_connections_were_terminated_hands_out_a_live_one_at_once(pool):
    checked, name = pool
    assert terminate(name) == IDLE

    started = time.monotonic()
    with checked.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # psycopg_pool's own check would back off 0 + 1 + 2 + 4 + 8 s over six dead connections.
    assert time.monotonic() - started < 1
    assert checked.get_stats()["connections_lost"] == IDLE - 1  # found by the one check()

    # Every connection it hands out afterwards works, without another round of checks.
    for _ in range(IDLE):
        with checked.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_django_connects_through_the_checking_backend():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    default = connections["default"]
    assert type(default).__module__ == "core.postgresql.base"
    assert default.pool is not None
    # With the pool, Django's own check (psycopg_pool's, with backoff) stays off.
    assert default.settings_dict["CONN_HEALTH_CHECKS"] is False
