"""The domain error base every app builds on, and the errors of what ``core`` shares.

Each app defines its own errors in its ``errors.py`` as subclasses of ``ApplicationError``; the
API's exception handler (``core.exception_handler``) turns them into JSON responses.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ApplicationError(Exception):
    """An error a client should see as-is: ``{"detail": ..., "code": ..., **extra}``.

    ``headers`` go on the response too (``Retry-After`` on a 429).
    """

    status_code: int = HTTPStatus.BAD_REQUEST
    code: str = "error"
    default_detail: str = "The request could not be processed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.extra = extra or {}
        self.headers: dict[str, str] = {}
        super().__init__(self.detail)


class InvalidDuration(ApplicationError):
    """A duration (``7d``, ``24h``) that ``core.durations.parse_duration`` cannot read."""

    code = "invalid_duration"
    default_detail = "Not a duration: use a number and s, m, h, d or w (90m, 24h, 7d)."


class ServiceUnavailable(ApplicationError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
    default_detail = "A service this request needs is unavailable. Try again later."


class RateLimited(ApplicationError):
    """Over a rate limit (``core.throttles``): 429 with ``Retry-After``."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"
    default_detail = "Too many requests. Try again later."

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(
            f"Too many requests: the limit is {limit} in this window. "
            f"Try again in {retry_after} seconds."
        )
        self.headers = {"Retry-After": str(retry_after)}


class RateLimitUnavailable(ServiceUnavailable):
    """The rate-limit cache can't count and ``RATE_LIMIT_FAIL_OPEN`` is off."""

    code = "rate_limit_unavailable"
    default_detail = "Rate limiting is unavailable right now. Try again later."
