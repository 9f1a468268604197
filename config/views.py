"""Probes: ``/healthz`` (the process is alive) and ``/readyz`` (its dependencies answer); the
API docs page.

Both answer GET and HEAD. ``/readyz`` is 503 when the database is down, and when the cache is
down while rate limits fail closed (``RATE_LIMIT_FAIL_OPEN`` off: every limited request would be
a 503). With rate limits failing open the service still answers without its cache, so a cache
outage is ``"status": "degraded"`` with 200: a load balancer keeps the instance.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value it stored")
    cache.delete(key)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    failed: list[str] = []
    for name, check in (("database", _check_database), ("cache", _check_cache)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # a probe reports every failure, whatever its type
            logger.warning("readyz: %s check failed: %s", name, exc)
            checks[name] = f"error: {type(exc).__name__}"
            failed.append(name)
    degraded = [name for name in failed if name == "cache" and settings.RATE_LIMIT_FAIL_OPEN]
    failed = [name for name in failed if name not in degraded]
    if failed:
        body = {
            "status": "unavailable",
            "detail": f"Not ready: {', '.join(failed)} unreachable.",
            "code": "not_ready",
            "failed": failed,
            "checks": checks,
        }
        return JsonResponse(body, status=HTTPStatus.SERVICE_UNAVAILABLE)
    if degraded:
        return JsonResponse({"status": "degraded", "degraded": degraded, "checks": checks})
    return JsonResponse({"status": "ok", "checks": checks})
