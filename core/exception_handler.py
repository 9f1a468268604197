"""One exception handler for the whole API: every error is JSON with ``detail`` and ``code``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError

logger = logging.getLogger(__name__)


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """``REST_FRAMEWORK["EXCEPTION_HANDLER"]``. A rate-limited view adds its ``X-RateLimit-*``
    headers afterwards (``core.throttles.RateLimitMixin``)."""
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.detail, "code": exc.code, **exc.extra}
        return Response(body, status=exc.status_code, headers=exc.headers)

    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is too large.", "code": "request_too_large"}, status=413
        )
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": "Bad request.", "code": "bad_request"}, status=400)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is away (down, or no connection within the pool's timeout): a fault of
        # ours the client can retry, not a bug. Data errors (IntegrityError...) stay 500s.
        logger.warning("Database unavailable: %s: %s", type(exc).__name__, exc)
        return Response(
            {"detail": "The database is unavailable. Try again.", "code": "database_unavailable"},
            status=503,
            headers={"Retry-After": "5"},
        )

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        # Not an API error: a bug. Log it and answer JSON; the middleware never lets HTML out.
        logger.exception("Unhandled error in API view", exc_info=exc)
        return Response({"detail": "Internal server error.", "code": "server_error"}, status=500)

    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        errors = (
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        )
        response.data = {
            "detail": "Invalid input.",
            "code": "invalid",
            "errors": errors,
        }
        return response

    data = response.data if isinstance(response.data, dict) else {"detail": response.data}
    data.setdefault("detail", exc.default_detail)
    data["code"] = data.get("code") or _first_code(exc.get_codes()) or exc.default_code
    response.data = data
    return response
