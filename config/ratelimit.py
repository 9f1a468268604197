"""Rate limits for API views: django-ratelimit counts, this module answers the DRF way.

Counting is django-ratelimit's ``get_usage`` on the ``default`` cache (``RATELIMIT_USE_CACHE``):
fixed windows, one counter per (scope, rate, key, window), created with ``cache.add`` and bumped
with ``cache.incr``. On django-redis both are single atomic Redis commands, so a limit holds
exactly across every process that shares the Redis. With the in-process cache (the embedded
default) each process counts on its own.

Use ``rate_limit`` on a DRF view method, innermost (next to the ``def``)::

    from config.ratelimit import AGENT, rate_limit

    class FeedbackViewSet(viewsets.GenericViewSet):
        @action(detail=True, methods=["post"])
        @rate_limit(AGENT)
        def feedback(self, request, pk=None): ...

``AGENT`` (per user, ``RATE_LIMIT_PER_MINUTE``) is shared by every agent endpoint: run, stream,
and the evaluation trigger and feedback endpoints when they come; a separate budget is a new
``RateLimit("feedback", key="user", rate=agent_rate)``. ``LOGIN`` is per client IP
(``LOGIN_RATE_LIMIT``). Over the limit the view answers 429 ``{"detail", "code":
"rate_limited"}`` with ``Retry-After``; every answer of a limited view, success or error,
carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``.

Cache unreachable: ``RATE_LIMIT_FAIL_OPEN`` lets the request through (warning log,
``ratelimit_backend_errors_total``), otherwise 503 ``rate_limit_unavailable``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django_ratelimit.core import get_usage
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from config.exceptions import ApplicationError, ServiceUnavailable
from config.metrics import RATELIMIT_BACKEND_ERRORS, RATELIMIT_REJECTIONS

logger = logging.getLogger(__name__)

# What a cache backend raises when it can't answer: django-redis wraps redis-py's errors in
# ConnectionInterrupted, but connecting may raise redis-py's own; OSError covers sockets
# (timeouts included).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionInterrupted,
    RedisError,
    OSError,
)

USAGE_ATTR = "_ratelimit_usage"

RateKey = str | Callable[[str, HttpRequest], str]


def agent_rate() -> str:
    return f"{settings.RATE_LIMIT_PER_MINUTE}/m"


def login_rate() -> str:
    return str(settings.LOGIN_RATE_LIMIT)


@dataclass
class RateLimit:
    """One limit. ``scope`` is django-ratelimit's group (endpoints sharing it share the count)
    and the ``scope`` label of the metrics; ``key`` is a django-ratelimit key ("user", "ip",
    "header:x-api-key", a callable ``(group, request) -> str``); ``rate`` a django-ratelimit
    rate ("60/m") or a callable returning one, read on every request."""

    scope: str
    key: RateKey
    rate: str | Callable[[], str]

    def get_rate(self) -> str:
        return self.rate() if callable(self.rate) else self.rate


AGENT = RateLimit("agent", key="user", rate=agent_rate)
LOGIN = RateLimit("login", key="ip", rate=login_rate)


@dataclass(frozen=True)
class Usage:
    limit: int
    count: int
    # Seconds until the current window ends and the count starts again.
    retry_after: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def limited(self) -> bool:
        return self.count > self.limit

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}


class RateLimited(ApplicationError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"
    default_detail = "Too many requests. Try again later."

    def __init__(self, usage: Usage) -> None:
        super().__init__(
            f"Too many requests: the limit is {usage.limit} in this window. "
            f"Try again in {usage.retry_after} seconds."
        )
        self.usage = usage
        # The API's exception handler puts an ApplicationError's ``headers`` on the response.
        self.headers = {**usage.headers(), "Retry-After": str(usage.retry_after)}


class RateLimitUnavailable(ServiceUnavailable):
    code = "rate_limit_unavailable"
    default_detail = "Rate limiting is unavailable right now. Try again later."


def _enabled() -> bool:
    return bool(settings.RATE_LIMIT_ENABLED and getattr(settings, "RATELIMIT_ENABLE", True))


def _backend_failed(limit: RateLimit, exc: BaseException | None) -> None:
    """Fail open (warn, count, let through) or closed (503), as ``RATE_LIMIT_FAIL_OPEN`` says."""
    RATELIMIT_BACKEND_ERRORS.labels(scope=limit.scope).inc()
    if settings.RATE_LIMIT_FAIL_OPEN:
        logger.warning(
            "Rate limit %r not checked, request let through: the cache is unavailable (%s)",
            limit.scope,
            exc or "no count returned",
        )
        return
    logger.warning(
        "Rate limit %r not checked, request refused: the cache is unavailable (%s)",
        limit.scope,
        exc or "no count returned",
    )
    raise RateLimitUnavailable()


def check(request: HttpRequest, limit: RateLimit) -> Usage | None:
    """Count this request against ``limit``; raise ``RateLimited`` when it is over.

    Returns the usage (also kept on the request for the error handler's headers), or None when
    limits are off or the cache failed open. ``request`` may be a DRF ``Request``.
    """
    if not _enabled():
        return None
    http_request: HttpRequest = getattr(request, "_request", request)
    try:
        raw = get_usage(
            http_request, group=limit.scope, key=limit.key, rate=limit.get_rate(), increment=True
        )
    except BACKEND_ERRORS as exc:
        _backend_failed(limit, exc)
        return None
    # django-ratelimit reports a cache that returned no count as None (RATELIMIT_FAIL_OPEN) or
    # as a limited zero count; a real, incremented count is at least 1.
    if raw is None or not raw["count"]:
        _backend_failed(limit, None)
        return None
    # The window lasts while int(time.time()) <= its end, so it frees up time_left + 1 s on.
    usage = Usage(limit=raw["limit"], count=raw["count"], retry_after=max(raw["time_left"], 0) + 1)
    previous: Usage | None = getattr(http_request, USAGE_ATTR, None)
    if previous is None or usage.remaining <= previous.remaining:
        setattr(http_request, USAGE_ATTR, usage)
    if usage.limited:
        RATELIMIT_REJECTIONS.labels(scope=limit.scope).inc()
        raise RateLimited(usage)
    return usage


def response_headers(request: Any) -> dict[str, str]:
    """The X-RateLimit-* headers for a request that went through ``check`` (else none)."""
    http_request = getattr(request, "_request", request)
    usage: Usage | None = getattr(http_request, USAGE_ATTR, None)
    return usage.headers() if usage is not None else {}


ViewMethod = TypeVar("ViewMethod", bound=Callable[..., Any])


def rate_limit(limit: RateLimit) -> Callable[[ViewMethod], ViewMethod]:
    """Decorate a DRF view method ``(self, request, *args, **kwargs)`` with ``limit``.

    It counts after authentication and permissions (DRF checks those before the method runs),
    so ``key="user"`` always has a user and rejected credentials are not counted.
    """

    def decorator(view_method: ViewMethod) -> ViewMethod:
        @functools.wraps(view_method)
        def wrapped(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            check(request, limit)
            response = view_method(self, request, *args, **kwargs)
            if isinstance(response, HttpResponseBase):
                for name, value in response_headers(request).items():
                    response[name] = value
            return response

        return wrapped  # type: ignore[return-value]

    return decorator


__all__ = [
    "AGENT",
    "LOGIN",
    "RateLimit",
    "RateLimitUnavailable",
    "RateLimited",
    "Usage",
    "agent_rate",
    "check",
    "login_rate",
    "rate_limit",
    "response_headers",
]
