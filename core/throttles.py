"""Rate limits as DRF throttles that count with django-ratelimit.

Counting is django-ratelimit's ``get_usage`` on the ``default`` cache (``RATELIMIT_USE_CACHE``):
fixed windows, one counter per (scope, rate, key, window), created with ``cache.add`` and bumped
with ``cache.incr``. On django-redis both are single atomic Redis commands, so a limit holds
exactly across every process that shares the Redis. With the in-process cache (the embedded
default) each process counts on its own. (DRF's own ``SimpleRateThrottle`` keeps a list of
timestamps that it reads and writes back, which is not exact across processes.)

A limited view lists the throttles in ``throttle_classes`` and inherits ``RateLimitMixin``
first::

    from core.throttles import AgentRateThrottle, RateLimitMixin

    class FeedbackViewSet(RateLimitMixin, viewsets.GenericViewSet):
        throttle_classes = (AgentRateThrottle,)

``AgentRateThrottle`` (scope ``agent``, per user, ``RATE_LIMIT_PER_MINUTE``) is shared by every
agent endpoint: run, stream, and the evaluation trigger and feedback endpoints when they come;
a separate budget is a new subclass with a scope of its own. ``LoginRateThrottle`` (scope
``login``) is per client IP (``LOGIN_RATE_LIMIT``). DRF checks throttles after authentication
and permissions, so ``key = "user"`` always has a user and rejected credentials are not counted;
a request no handler answers (405, OPTIONS) is not counted either.

Over the limit the view answers 429 ``{"detail", "code": "rate_limited"}`` with
``Retry-After``; every answer of a limited view, success or error, carries
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (of the limit with the fewest requests left).

Cache unreachable: ``RATE_LIMIT_FAIL_OPEN`` lets the request through (warning log,
``ratelimit_backend_errors_total``), otherwise 503 ``rate_limit_unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_ratelimit.core import get_usage
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from config.metrics import RATELIMIT_BACKEND_ERRORS, RATELIMIT_REJECTIONS
from core.errors import RateLimited, RateLimitUnavailable

logger = logging.getLogger(__name__)

# What a cache backend raises when it can't answer: django-redis wraps redis-py's errors in
# ConnectionInterrupted, but connecting may raise redis-py's own; OSError covers sockets
# (timeouts included).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionInterrupted,
    RedisError,
    OSError,
)


@dataclass(frozen=True)
class Usage:
    """One request's count against one limit."""

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


class RateLimitThrottle(BaseThrottle):
    """One limit. ``scope`` is django-ratelimit's group (views sharing it share the count) and
    the ``scope`` label of the metrics; ``key`` a django-ratelimit key ("user", "ip",
    "header:x-api-key", the dotted path of a ``(group, request) -> str``); ``get_rate`` returns a
    django-ratelimit rate ("60/m"), read on every request.

    After ``allow_request`` the instance holds the request's ``usage`` (None when limits are
    off, the cache failed open or the request was not counted).
    """

    scope: ClassVar[str]
    key: ClassVar[str]

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def get_rate(self) -> str:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not isinstance(view, RateLimitMixin):
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses {type(self).__name__}: inherit RateLimitMixin"
            )
        if not _enabled() or not _answered(request, view):
            return True
        try:
            raw = get_usage(
                request._request,
                group=self.scope,
                key=self.key,
                rate=self.get_rate(),
                increment=True,
            )
        except BACKEND_ERRORS as exc:
            return self._backend_failed(exc)
        # django-ratelimit reports a cache that returned no count as None (RATELIMIT_FAIL_OPEN)
        # or as a limited zero count; a real, incremented count is at least 1.
        if raw is None or not raw["count"]:
            return self._backend_failed(None)
        # The window lasts while int(time.time()) <= its end, so it frees up time_left + 1 s on.
        self.usage = Usage(
            limit=raw["limit"], count=raw["count"], retry_after=max(raw["time_left"], 0) + 1
        )
        if self.usage.limited:
            RATELIMIT_REJECTIONS.labels(scope=self.scope).inc()
            return False
        return True

    def wait(self) -> float | None:
        return self.usage.retry_after if self.usage is not None else None

    def _backend_failed(self, exc: BaseException | None) -> bool:
        """Fail open (warn, count, let through) or closed (503), as ``RATE_LIMIT_FAIL_OPEN``
        says."""
        RATELIMIT_BACKEND_ERRORS.labels(scope=self.scope).inc()
        outcome = "let through" if settings.RATE_LIMIT_FAIL_OPEN else "refused"
        logger.warning(
            "Rate limit %r not checked, request %s: the cache is unavailable (%s)",
            self.scope,
            outcome,
            exc or "no count returned",
        )
        if not settings.RATE_LIMIT_FAIL_OPEN:
            raise RateLimitUnavailable()
        return True


class AgentRateThrottle(RateLimitThrottle):
    """Per user, ``RATE_LIMIT_PER_MINUTE`` requests a minute, over every agent endpoint."""

    scope = "agent"
    key = "user"

    def get_rate(self) -> str:
        return f"{settings.RATE_LIMIT_PER_MINUTE}/m"


class LoginRateThrottle(RateLimitThrottle):
    """Per client IP (``REMOTE_ADDR``), ``LOGIN_RATE_LIMIT``, over every login endpoint."""

    scope = "login"
    key = "ip"

    def get_rate(self) -> str:
        return str(settings.LOGIN_RATE_LIMIT)


def _enabled() -> bool:
    return bool(settings.RATE_LIMIT_ENABLED and getattr(settings, "RATELIMIT_ENABLE", True))


def _answered(request: Request, view: APIView) -> bool:
    """Whether a handler of the view answers this method (not a 405, not OPTIONS metadata)."""
    method = (request.method or "").lower()
    return method != "options" and method in view.http_method_names and hasattr(view, method)


class RateLimitMixin(APIView):
    """For a view whose ``throttle_classes`` hold ``RateLimitThrottle``s: keeps the throttles it
    checked, answers a rejection with ``RateLimited`` (429, ``Retry-After``) and puts the
    ``X-RateLimit-*`` headers on every response, success or error. Inherit it first."""

    _throttles: list[BaseThrottle] | None = None

    def get_throttles(self) -> list[BaseThrottle]:
        # DRF makes new throttles on every call; these keep the counts of this request.
        if self._throttles is None:
            self._throttles = list(super().get_throttles())
        return self._throttles

    def throttled(self, request: Request, wait: float) -> NoReturn:
        rejected = [usage for usage in self._usages() if usage.limited]
        if not rejected:  # another kind of throttle refused the request
            super().throttled(request, wait)
        usage = max(rejected, key=lambda usage: usage.retry_after)
        raise RateLimited(limit=usage.limit, retry_after=usage.retry_after)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # Also a StreamingHttpResponse (the run stream): only its headers are set here.
        response = super().finalize_response(request, response, *args, **kwargs)
        usages = self._usages()
        if usages:
            tightest = min(usages, key=lambda usage: usage.remaining)
            for name, value in tightest.headers().items():
                response[name] = value
        return response

    def _usages(self) -> Sequence[Usage]:
        return [
            throttle.usage
            for throttle in self._throttles or ()
            if isinstance(throttle, RateLimitThrottle) and throttle.usage is not None
        ]


__all__ = [
    "AgentRateThrottle",
    "LoginRateThrottle",
    "RateLimitMixin",
    "RateLimitThrottle",
    "Usage",
]
