"""Prometheus metrics of the whole project: plain metric objects, defined once, imported where
they are counted. Exposing them (a ``/metrics`` endpoint) is not this module's job.

In a multi-process server each process counts on its own unless ``PROMETHEUS_MULTIPROC_DIR``
is set for prometheus_client's multiprocess mode.
"""

from __future__ import annotations

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
