"""Domain errors of our own. The API's exception handler turns them into JSON responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ApplicationError(Exception):
    """An error a client should see as-is: ``{"detail": ..., "code": ..., **extra}``."""

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
        super().__init__(self.detail)


class ServiceUnavailable(ApplicationError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
    default_detail = "A service this request needs is unavailable. Try again later."
