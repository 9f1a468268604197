"""Cross-cutting middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    500: "server_error",
}


class ApiErrorMiddleware:
    """No HTML error page ever leaves ``/api/``.

    DRF already answers JSON for errors raised in API views; this catches the rest: URL-resolver
    404s, Django's 400 for oversized or suspicious requests, CSRF failures and crashes (also with
    ``DEBUG`` on, where Django would render its technical pages).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return self._json_error(response.status_code)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        logger.exception("Unhandled error on %s", request.path, exc_info=exception)
        return self._json_error(500)

    @staticmethod
    def _json_error(status: int) -> JsonResponse:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = {"detail": f"{phrase}.", "code": _CODES.get(status, "error")}
        return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


class OptionalSlashMiddleware:
    """Every path answers with and without its trailing slash, whatever the method.

    A path that does not resolve is served as its twin (the slash added or removed) when the
    twin resolves: no redirect, so a POST keeps its body (``APPEND_SLASH`` would answer 301, and
    clients follow a 301 with a body-less GET). Paths that resolve as sent are untouched.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        urlconf = getattr(request, "urlconf", None)
        if path not in ("", "/") and not _served(path, urlconf):
            twin = path[:-1] if path.endswith("/") else f"{path}/"
            if _served(twin, urlconf):
                prefix = request.path[: len(request.path) - len(path)]
                request.path_info = twin
                request.path = f"{prefix}{twin}"
        return self.get_response(request)


def _served(path: str, urlconf: str | None) -> bool:
    """Whether a view of ours answers ``path``. The admin's catch-all view matches every path
    under ``/admin/`` only to redirect it with a slash (or 404), so it does not count."""
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return False
    return getattr(match.func, "__name__", "") != "catch_all_view"
