"""The PostgreSQL backend: django-prometheus's (query, error and connection metrics), whose pooled
connections are checked when they leave the pool (``core.postgresql.pool.checkout``).

With ``OPTIONS["pool"]`` set, ``CONN_HEALTH_CHECKS`` must stay off: it would give the pool
psycopg_pool's ``check`` callback, which runs first and backs off between dead connections."""

from __future__ import annotations

from typing import Any

from django_prometheus.db.backends.postgresql import base

from core.postgresql.pool import checkout


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        take = super().get_new_connection
        if self.pool is None:  # persistent connections: Django's CONN_HEALTH_CHECKS checks them
            return take(conn_params)
        return checkout(self.pool, lambda: take(conn_params))
