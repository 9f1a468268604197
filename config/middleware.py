"""Cross-cutting middleware."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as message_middleware
from django.contrib.sessions import middleware as session_middleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware import common
from django.urls import Resolver404, resolve
from whitenoise.middleware import WhiteNoiseMiddleware

logger = logging.getLogger(__name__)


class _DualModeMiddleware:
    """Sync and async capable (Django's "Asynchronous support" for middleware): under ASGI a
    stack of such middleware runs on the event loop, and only the view itself goes to a thread;
    one sync-only middleware would cost two thread hops a request. Subclasses implement
    ``__call__`` for sync and ``__acall__`` for async mode."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)  # type: ignore[type-var]


_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    500: "server_error",
}


class ApiErrorMiddleware(_DualModeMiddleware):
    """No HTML error page ever leaves ``/api/``.

    DRF already answers JSON for errors raised in API views; this catches the rest: URL-resolver
    404s, Django's 400 for oversized or suspicious requests, CSRF failures and crashes (also with
    ``DEBUG`` on, where Django would render its technical pages).
    """

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return self._checked(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return self._checked(request, await self.get_response(request))

    def _checked(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
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


class OptionalSlashMiddleware(_DualModeMiddleware):
    """Every path answers with and without its trailing slash, whatever the method.

    A path that does not resolve is served as its twin (the slash added or removed) when the
    twin resolves: no redirect, so a POST keeps its body (``APPEND_SLASH`` would answer 301, and
    clients follow a 301 with a body-less GET). Paths that resolve as sent are untouched.
    """

    def __call__(self, request: HttpRequest) -> Any:
        self._route(request)
        return self.get_response(request)  # a coroutine in async mode

    @staticmethod
    def _route(request: HttpRequest) -> None:
        path = request.path_info
        urlconf = getattr(request, "urlconf", None)
        if path not in ("", "/") and not _served(path, urlconf):
            twin = path[:-1] if path.endswith("/") else f"{path}/"
            if _served(twin, urlconf):
                prefix = request.path[: len(request.path) - len(path)]
                request.path_info = twin
                request.path = f"{prefix}{twin}"


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's middleware, also async capable (WhiteNoise 6 is sync only).

    A request for a static file is served as WhiteNoise serves it, in a thread (it opens the
    file); every other request passes through on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        if self.autorefresh:  # development: looks at the file system
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


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


# Django's own middleware, on the event loop. Under ASGI Django's ``MiddlewareMixin`` runs
# every ``process_request`` and ``process_response`` through ``sync_to_async``: two thread hops
# per middleware and request. These subclasses call the same methods directly in async mode
# where they only look at the request and the response (no query, no file), and hand over to a
# thread only when one would touch the database (a session to save, messages to store). In
# sync mode (WSGI, the test client) they are Django's classes unchanged. (Security, CSRF and
# X-Frame-Options are left as Django ships them: ``check --deploy`` looks for them by name.)


class _OnTheLoop:
    """Mixin for a ``MiddlewareMixin`` subclass: its async path calls ``process_request`` and
    ``process_response`` on the event loop unless ``_needs_thread`` says otherwise."""

    get_response: Callable[[HttpRequest], Any]

    def _needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> Any:
        process_request = getattr(self, "process_request", None)
        process_response = getattr(self, "process_response", None)
        response = None
        if process_request is not None:
            response = process_request(request)
        response = response or await self.get_response(request)
        if process_response is not None:
            if self._needs_thread(request):
                return await sync_to_async(process_response)(request, response)
            response = process_response(request, response)
        return response


class CommonMiddleware(_OnTheLoop, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(_OnTheLoop, auth_middleware.AuthenticationMiddleware):
    """Sets ``request.user`` lazily (no query until it is read)."""


class SessionMiddleware(_OnTheLoop, session_middleware.SessionMiddleware):
    """The session store is lazy: nothing is read until a view uses it. Saving one is a query,
    so a modified session is saved in a thread, as Django does."""

    def _needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(_OnTheLoop, message_middleware.MessageMiddleware):
    """Messages are stored (in the cookie, then the session) only when a view added or read
    some; then in a thread."""

    def _needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)
