"""Cross-cutting middleware."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

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


class RequestBodyLimitMiddleware:
    """ASGI: every request body is capped and read within a deadline, before Django sees it.

    Django's ASGI handler reads a whole body (to a temporary file past
    ``FILE_UPLOAD_MAX_MEMORY_SIZE``) before any view or middleware runs, and
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` applies to neither files nor the reading. Here a body over
    ``REQUEST_BODY_MAX_BYTES`` is a 413 JSON answer, at once when ``Content-Length`` says so,
    else as soon as the streamed (chunked) body passes the cap; a body that is not complete
    ``REQUEST_BODY_TIMEOUT_SECONDS`` after the headers is a 408. Either way the rest of the body
    is never read and the connection closes. A body within both limits is handed to Django as
    it came.
    """

    def __init__(self, app: Any, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _send_json_error(
                send, 400, "The Content-Length header is not valid.", "bad_request"
            )
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return
        received: list[dict[str, Any]] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                await _send_json_error(
                    send,
                    408,
                    f"The request body did not arrive within {self.timeout:g} seconds.",
                    "request_timeout",
                )
                return
            received.append(message)
            if message["type"] != "http.request":  # http.disconnect: let Django see it
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            if received:
                return received.pop(0)
            return await receive()  # a later http.disconnect (the run stream listens for it)

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await _send_json_error(
            send,
            413,
            f"The request body is too large: at most {self.max_bytes} bytes.",
            "request_too_large",
        )


def _content_length(scope: dict[str, Any]) -> int | None:
    """The declared body length; None when not declared, -1 when not a number."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


async def _send_json_error(send: Any, status: int, detail: str, code: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
