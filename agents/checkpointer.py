"""Conversation memory: one LangGraph checkpointer per process.

PostgreSQL: ``PostgresSaver`` on a psycopg pool (autocommit, ``prepare_threshold=0`` so that it
works behind PgBouncer, a connection check on checkout by ``core.postgresql.pool``, bounded idle
time and lifetime). The pool is created lazily and again after a fork, never per request.
SQLite: ``SqliteSaver`` on a file. Tables are created and upgraded by every ``migrate`` (a
post_migrate handler in ``agents.apps``).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from langgraph.checkpoint.base import BaseCheckpointSaver

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "saver": None, "closer": None, "key": None}


def checkpoint_backend() -> str:
    if settings.AGENT_CHECKPOINT_DATABASE_URL:
        return "postgres"
    vendor = connections["default"].vendor
    return "postgres" if vendor == "postgresql" else "sqlite"


# Keys of Django's PostgreSQL OPTIONS that are Django's or psycopg's own, not libpq parameters.
_NOT_LIBPQ_OPTIONS = frozenset(
    {"pool", "isolation_level", "server_side_binding", "assume_role", "cursor_factory",
     "prepare_threshold", "context"}
)  # fmt: skip


def postgres_conninfo(db: dict[str, Any] | None = None) -> str:
    """Where checkpoints live: AGENT_CHECKPOINT_DATABASE_URL, else Django's default database,
    with every libpq option of its ``OPTIONS`` (``sslmode``, ``sslrootcert``, ``options``,
    ``application_name``, ``connect_timeout``...), as Django connects."""
    from psycopg.conninfo import make_conninfo

    if settings.AGENT_CHECKPOINT_DATABASE_URL:
        return str(settings.AGENT_CHECKPOINT_DATABASE_URL)
    db = db or connections["default"].settings_dict
    options = {
        key: value
        for key, value in (db.get("OPTIONS") or {}).items()
        if key not in _NOT_LIBPQ_OPTIONS
        and isinstance(value, str | int | float)
        and not isinstance(value, bool)
    }
    params = {
        **options,
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
    }
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _build_postgres() -> tuple[BaseCheckpointSaver, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    from core.postgresql.pool import CheckedConnectionPool

    # Checked on checkout as Django's pool is: dead idle connections dropped at once, no backoff.
    pool: CheckedConnectionPool[Any] = CheckedConnectionPool(
        conninfo=postgres_conninfo(),
        min_size=settings.AGENT_CHECKPOINT_POOL_MIN_SIZE,
        max_size=settings.AGENT_CHECKPOINT_POOL_MAX_SIZE,
        max_idle=settings.AGENT_CHECKPOINT_POOL_MAX_IDLE,
        max_lifetime=settings.AGENT_CHECKPOINT_POOL_MAX_LIFETIME,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        name="agent-checkpoints",
        open=True,
    )
    return PostgresSaver(pool), pool.close


def sqlite_connection(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _build_sqlite() -> tuple[BaseCheckpointSaver, Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite_connection(settings.AGENT_CHECKPOINT_SQLITE_PATH)
    return SqliteSaver(conn), conn.close


def _key() -> tuple[str, str]:
    backend = checkpoint_backend()
    where = postgres_conninfo() if backend == "postgres" else settings.AGENT_CHECKPOINT_SQLITE_PATH
    return backend, where


def get_checkpointer() -> BaseCheckpointSaver:
    """The process's checkpointer; rebuilt in a forked child or when its location changes."""
    key = _key()
    with _lock:
        if _state["saver"] is None or _state["pid"] != os.getpid() or _state["key"] != key:
            if _state["pid"] == os.getpid() and _state["closer"]:
                _state["closer"]()  # same process, new location (tests): close the old one
            saver, closer = _build_postgres() if key[0] == "postgres" else _build_sqlite()
            _state.update(pid=os.getpid(), saver=saver, closer=closer, key=key)
        return _state["saver"]


def close_checkpointer() -> None:
    with _lock:
        if _state["closer"] and _state["pid"] == os.getpid():
            _state["closer"]()
        _state.update(pid=None, saver=None, closer=None, key=None)


def setup_checkpoint_tables_on_migrate(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: create or upgrade the checkpointer's tables next to the migrated database."""
    if using != "default":
        return
    connection = connections[using]
    if settings.AGENT_CHECKPOINT_DATABASE_URL or connection.vendor == "postgresql":
        setup_checkpoint_tables(postgres_conninfo(connection.settings_dict), "postgres")
    else:
        setup_checkpoint_tables(settings.AGENT_CHECKPOINT_SQLITE_PATH, "sqlite")


def setup_checkpoint_tables(conninfo_or_path: str, backend: str) -> None:
    """Create or upgrade the checkpointer's tables; safe to run again."""
    if backend == "postgres":
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        with psycopg.connect(
            conninfo_or_path, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            PostgresSaver(conn).setup()
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn_sqlite = sqlite_connection(conninfo_or_path)
        try:
            SqliteSaver(conn_sqlite).setup()
        finally:
            conn_sqlite.close()


atexit.register(close_checkpointer)
