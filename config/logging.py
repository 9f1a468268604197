"""Log context: a correlation id per request and the ids of what is being worked on.

``CorrelationIdMiddleware`` takes ``X-Request-ID`` from the request (or makes one), echoes it in
the response, and puts it in a context variable; ``bind_log_context`` adds user, run, thread and
trace ids as they become known. ``ContextFilter`` copies them onto every log record, so the JSON
formatter writes them as fields. Context variables follow the request into ``sync_to_async``
threads and LangGraph's workers; code that starts its own thread uses ``copy_context()``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter

from core.http import client_ip

CONTEXT_FIELDS = ("correlation_id", "user_id", "run_id", "thread_id", "trace_id")
_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
REQUEST_ID_HEADER = "X-Request-ID"
access_logger = logging.getLogger("config.access")


def get_log_context() -> dict[str, str]:
    return dict(_context.get())


def correlation_id() -> str | None:
    return _context.get().get("correlation_id")


@contextmanager
def bind_log_context(**values: Any) -> Iterator[None]:
    """Add fields to every log line written inside the ``with`` block (None values skipped)."""
    current = _context.get()
    token = _context.set({**current, **{k: str(v) for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the context fields on each record; ``-`` where unknown, so text formats work."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        # Django logs a request's 4xx/5xx (``django.request``) after the middleware returned,
        # outside the request's context: the id is still on the request it passes along.
        request_id = getattr(getattr(record, "request", None), "correlation_id", None)
        if request_id and "correlation_id" not in context:
            context = {**context, "correlation_id": request_id}
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, "-"))
        return True


class JsonContextFormatter(JsonFormatter):
    """python-json-logger's formatter, leaving out context fields that are unknown."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_data.items() if value != "-"}


def _request_id(request: HttpRequest) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex


class CorrelationIdMiddleware:
    """One id per request, from ``X-Request-ID`` when the caller (or a proxy) sends a sane one.

    Sync and async capable: under ASGI it runs on the event loop, so it costs no thread hop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        request_id = _request_id(request)
        request.correlation_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with bind_log_context(correlation_id=request_id):
            response = self.get_response(request)
            _access_log(request, response, started)
        response[REQUEST_ID_HEADER] = request_id
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id(request)
        request.correlation_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with bind_log_context(correlation_id=request_id):
            response = await self.get_response(request)
            _access_log(request, response, started)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _access_log(request: HttpRequest, response: HttpResponse, started: float) -> None:
    access_logger.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "client_ip": client_ip(request),
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
