"""Pooled PostgreSQL connections, checked when they leave the pool: Django's and the checkpointer's.

A pool's idle connections die together: a restart, a failover, an idle-session timeout or
``pg_terminate_backend`` ends every one of them at once. psycopg_pool's own ``check`` callback
finds them dead one at a time on checkout and backs off between each two (0, 1, 2, 4, 8 s...):
a checkout that meets k dead connections waits 2^(k-1) - 1 seconds, and from five on it runs out
of the pool's timeout (``PoolTimeout``: a request answers 500). ``checkout`` takes the first dead
connection as news about the rest: the pool checks all its idle connections at once
(``ConnectionPool.check``, which discards the dead and opens replacements) and the checkout is
tried once more. A pool checked this way gets no ``check`` callback of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=psycopg.Connection[Any])


def checkout(pool: ConnectionPool[Any], take: Callable[[], C]) -> C:
    """A connection of ``pool``, taken by ``take``, that answered a check: if the first one is
    dead, the pool drops its other dead idle connections and one more is taken. A second failed
    check (the server is down, not just restarted) raises ``psycopg.OperationalError``."""
    conn = take()
    try:
        pool.check_connection(conn)
    except psycopg.Error as exc:
        logger.warning(
            "A pooled connection of %r was dead (%s): checking its idle connections", pool.name, exc
        )
        pool.putconn(conn)  # discarded, and replaced by the pool's workers
    else:
        return conn
    pool.check()
    conn = take()
    try:
        pool.check_connection(conn)
    except psycopg.Error:
        pool.putconn(conn)
        raise
    return conn


class CheckedConnectionPool(ConnectionPool[C]):
    """psycopg's pool whose ``getconn`` (and so ``connection()``) hands out only connections
    that answered a check, by ``checkout``. Create it without ``check``."""

    def getconn(self, timeout: float | None = None) -> C:
        take = super().getconn
        return checkout(self, lambda: take(timeout))
