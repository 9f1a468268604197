"""The HTTP server's own limits on slow clients (uvicorn, alone or as gunicorn's worker).

uvicorn bounds the idle time between requests on a kept-alive connection
(``--timeout-keep-alive``) but not the time a client takes to send its request headers: a client
that connects and sends nothing, or a header byte every few seconds, holds a connection for
ever. ``HttpProtocol`` (uvicorn's default protocol, httptools or h11) closes a connection whose
request headers are not complete ``REQUEST_HEADER_TIMEOUT_SECONDS`` (default 10) after it
opened or after its previous response. The body's read time is bounded in the application
(``config.middleware.RequestBodyLimitMiddleware``).

    uvicorn config.asgi:application --http config.server:HttpProtocol
    gunicorn config.asgi:application -k config.server.UvicornWorker -c docker/gunicorn.conf.py

This module is imported by the server before Django is set up: it reads the environment itself
and never imports Django.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn_worker import UvicornWorker as _UvicornWorker

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover  (httptools is not installed: uvicorn uses h11)
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def header_timeout() -> float:
    return float(os.environ.get("REQUEST_HEADER_TIMEOUT_SECONDS") or 10.0)


class HttpProtocol(_Base):
    """uvicorn's HTTP protocol with a deadline for each request's headers."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        waiting_after = self.cycle  # a new request replaces the cycle
        self._header_timer = self.loop.call_later(
            header_timeout(), self._header_timer_expired, waiting_after
        )

    def _header_timer_expired(self, waiting_after: Any) -> None:
        if self.cycle is waiting_after and not self.transport.is_closing():
            self.transport.close()


class UvicornWorker(_UvicornWorker):
    """gunicorn's uvicorn worker with ``HttpProtocol``, and without the ASGI lifespan protocol:
    Django has no lifespan events, and probing for them prints "ASGI 'lifespan' protocol appears
    unsupported" at every start."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",
        "http": "config.server:HttpProtocol",
        "lifespan": "off",
    }
