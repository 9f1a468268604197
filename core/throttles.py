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
a separate budget is a new subclass with a scope of its own. ``LOGIN_RATE_LIMIT`` is counted
twice on every login, per client IP (``LoginRateThrottle``, scope ``login``, the IP of
``core.http.client_ip``) and per account (``LoginAccountRateThrottle``, scope ``login-account``,
the email tried, whatever the IP): the API's login endpoints list both throttles, the HTML login
forms (``/accounts/login/``, ``/admin/login/``) are wrapped in ``login_form_rate_limited``,
which answers an HTML 429 page. DRF checks throttles after authentication
and permissions, so ``key = "user"`` always has a user and rejected credentials are not counted;
a request no handler answers (405, OPTIONS) is not counted either.

Over the limit the view answers 429 ``{"detail", "code": "rate_limited"}`` with
``Retry-After``; every answer of a limited view, success or error, carries
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (of the limit with the fewest requests left).

Cache unreachable: ``RATE_LIMIT_FAIL_OPEN`` lets the request through (warning log,
``ratelimit_backend_errors_total``), otherwise 503 ``rate_limit_unavailable``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, NoReturn

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.html import escape
from django_ratelimit.core import get_usage
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from config.metrics import RATELIMIT_BACKEND_ERRORS, RATELIMIT_REJECTIONS
from core.errors import RateLimited, RateLimitUnavailable
from core.http import client_ip

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
    key: ClassVar[str] = ""

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def get_rate(self) -> str:
        raise NotImplementedError

    def get_key(self, request: Request) -> Any:
        """What django-ratelimit counts by: ``key``, or a ``(group, request) -> str`` callable;
        None: this request is not counted."""
        return self.key

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not isinstance(view, RateLimitMixin):
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses {type(self).__name__}: inherit RateLimitMixin"
            )
        if not _enabled() or not _answered(request, view):
            return True
        key = self.get_key(request)
        if key is None:
            return True
        try:
            raw = count(request._request, scope=self.scope, key=key, rate=self.get_rate())
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
    """Per client IP (``core.http.client_ip``), ``LOGIN_RATE_LIMIT``, over every login form and
    endpoint."""

    scope = "login"

    def get_rate(self) -> str:
        return str(settings.LOGIN_RATE_LIMIT)

    def get_key(self, request: Request) -> Any:
        return _client_ip_key


class LoginAccountRateThrottle(LoginRateThrottle):
    """Per account (the email in the body: ``username`` or ``email``), ``LOGIN_RATE_LIMIT``,
    over every login form and endpoint: guessing one account's password from many IPs is
    limited too. A body without an email is not counted (the IP limit still is)."""

    scope = "login-account"

    def get_key(self, request: Request) -> Any:
        try:
            data = request.data
        except Exception:
            return None
        return _account_key(data)


def _client_ip_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


def _account_key(data: Any) -> Any:
    if not hasattr(data, "get"):
        return None
    email = data.get("username") or data.get("email")
    if not isinstance(email, str) or not email.strip():
        return None
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
    return lambda group, request: f"account:{digest}"


def count(request: HttpRequest, *, scope: str, key: Any, rate: str) -> dict[str, Any] | None:
    """Count one request against ``rate`` in ``scope`` (django-ratelimit's ``get_usage``)."""
    return get_usage(request, group=scope, key=key, rate=rate, increment=True)


def login_form_rate_limited(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """Wrap an HTML login view (Django's ``LoginView``, the admin's login): a POST counts
    against ``LOGIN_RATE_LIMIT`` per client IP and per account, like the API's login
    endpoints; over a limit the form is not checked and the answer is a 429 page with
    ``Retry-After``. A cache outage fails open or closed as ``RATE_LIMIT_FAIL_OPEN`` says."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST" and _enabled():
            keys = [("login", _client_ip_key), ("login-account", _account_key(request.POST))]
            for scope, key in keys:
                if key is None:
                    continue
                try:
                    raw = count(request, scope=scope, key=key, rate=str(settings.LOGIN_RATE_LIMIT))
                except BACKEND_ERRORS as exc:
                    raw = None
                    logger.warning(
                        "Rate limit %r not checked: the cache is unavailable (%s)", scope, exc
                    )
                if raw is None or not raw["count"]:
                    RATELIMIT_BACKEND_ERRORS.labels(scope=scope).inc()
                    if not settings.RATE_LIMIT_FAIL_OPEN:
                        return _html_error(
                            HTTPStatus.SERVICE_UNAVAILABLE, RateLimitUnavailable.default_detail, {}
                        )
                    continue
                if raw["count"] > raw["limit"]:
                    RATELIMIT_REJECTIONS.labels(scope=scope).inc()
                    error = RateLimited(
                        limit=raw["limit"], retry_after=max(raw["time_left"], 0) + 1
                    )
                    return _html_error(HTTPStatus.TOO_MANY_REQUESTS, error.detail, error.headers)
        return view(request, *args, **kwargs)

    return wrapped


def _html_error(status: int, detail: str, headers: dict[str, str]) -> HttpResponse:
    title = f"{status} {HTTPStatus(status).phrase}"
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title}</h1><p>{escape(detail)}</p></body></html>"
    )
    response = HttpResponse(body, status=status, content_type="text/html; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    return response


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
    "LoginAccountRateThrottle",
    "LoginRateThrottle",
    "RateLimitMixin",
    "RateLimitThrottle",
    "Usage",
    "login_form_rate_limited",
]
