"""Prometheus metrics of the whole project: plain metric objects, defined once, imported where
they are counted. Exposing them (a ``/metrics`` endpoint) is not this module's job.

In a multi-process server each process counts on its own unless ``PROMETHEUS_MULTIPROC_DIR``
is set for prometheus_client's multiprocess mode.
"""

from __future__ import annotations

from typing import Any

from django_prometheus import middleware
from prometheus_client import Counter

# Rate limits and budgets (core.throttles, agents.budget). ``scope``: "agent", "login",
# "token_budget", ...
RATELIMIT_REJECTIONS = Counter(
    "ratelimit_rejections_total",
    "Requests answered 429 by a rate limit or a budget.",
    ["scope"],
)
RATELIMIT_BACKEND_ERRORS = Counter(
    "ratelimit_backend_errors_total",
    "Rate-limit checks that could not reach the cache (Redis) and failed open or closed.",
    ["scope"],
)

# Known scopes start at zero, so rate() and alerts see the first rejection too.
for _scope in ("agent", "login", "token_budget"):
    RATELIMIT_REJECTIONS.labels(scope=_scope)
    RATELIMIT_BACKEND_ERRORS.labels(scope=_scope)


class PrometheusBeforeMiddleware(middleware.PrometheusBeforeMiddleware):
    """django_prometheus's, counting the same; under ASGI on the event loop (its base class
    would run both methods through ``sync_to_async``). Counting is memory (or, multi-process,
    an mmap'ed file) only."""

    async def __acall__(self, request: Any) -> Any:
        self.process_request(request)
        return self.process_response(request, await self.get_response(request))


class PrometheusAfterMiddleware(middleware.PrometheusAfterMiddleware):
    """django_prometheus's, counting the same; on the event loop under ASGI (see above)."""

    async def __acall__(self, request: Any) -> Any:
        self.process_request(request)
        return self.process_response(request, await self.get_response(request))
