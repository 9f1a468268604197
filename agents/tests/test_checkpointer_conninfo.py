"""The checkpointer connects as Django does: every libpq option of DATABASE_URL's OPTIONS
(``sslmode``, ``options``, ``application_name``...) reaches its connections."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from psycopg.conninfo import conninfo_to_dict

from agents.checkpointer import postgres_conninfo


def test_libpq_options_are_kept_and_django_ones_dropped(settings: Any) -> None:
    settings.AGENT_CHECKPOINT_DATABASE_URL = ""
    db = {
        "NAME": "agents",
        "USER": "app",
        "PASSWORD": "$ecret",
        "HOST": "db.internal",
        "PORT": 5433,
        "OPTIONS": {
            "sslmode": "verify-full",
            "sslrootcert": "/etc/ssl/ca.pem",
            "options": "-c statement_timeout=5000",
            "application_name": "agents-web",
            "connect_timeout": 5,
            "pool": {"min_size": 1},
            "isolation_level": 1,
            "server_side_binding": True,
        },
    }
    params = conninfo_to_dict(postgres_conninfo(db))
    assert params == {
        "dbname": "agents",
        "user": "app",
        "password": "$ecret",
        "host": "db.internal",
        "port": "5433",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/ca.pem",
        "options": "-c statement_timeout=5000",
        "application_name": "agents-web",
        "connect_timeout": "5",
    }


@pytest.mark.services
@pytest.mark.django_db
def test_the_options_reach_a_real_connection(settings: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    import psycopg

    settings.AGENT_CHECKPOINT_DATABASE_URL = ""
    db = {
        **connection.settings_dict,
        "OPTIONS": {
            **connection.settings_dict.get("OPTIONS", {}),
            "sslmode": "disable",
            "options": "-c statement_timeout=4321",
            "application_name": "checkpointer-conninfo-test",
        },
    }
    with psycopg.connect(postgres_conninfo(db)) as conn:
        timeout = conn.execute("SHOW statement_timeout").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
    assert timeout is not None
    assert timeout[0] == "4321ms"
    assert name is not None
    assert name[0] == "checkpointer-conninfo-test"
