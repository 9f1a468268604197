"""A local stand-in for the Langfuse API that records the spans the real SDK exports (stdlib).

Usage::

    with LangfuseReceiver() as receiver:                 # or LangfuseReceiver(delay=5): slow
        settings.LANGFUSE_HOST = receiver.base_url
        ...                                              # trace something, flush the client
        spans = receiver.wait_for_spans(lambda s: s.name == "agent_run")
        assert spans[0].attributes["user.id"] == "42"

    settings.LANGFUSE_HOST = dead_url()                  # a port where nothing listens

It accepts the SDK's OTLP/HTTP export (``POST /api/public/otel/v1/traces``, protobuf or JSON,
gzip/deflate or plain) and records every span as a :class:`ReceivedSpan`: name, hex trace and
span ids, and its attributes decoded to Python values. Every other path (scores, media,
projects, health, ingestion) answers 200 with a small JSON body; all requests are recorded in
``requests``, and the scores the SDK posts (``POST /api/public/scores``, a JSON list) in
``scores`` (one dict per score, API field names: ``id``, ``traceId``, ``name``, ``value``).
``delay`` holds each answer that long (or until the receiver stops); ``status`` answers the
trace export with that HTTP status instead of 200.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""

    def metadata(self, kind: str = "trace") -> dict[str, Any]:
        """``langfuse.<kind>.metadata.*`` attributes, JSON-decoded where they are JSON."""
        prefix = f"langfuse.{kind}.metadata."
        result = {}
        for key, value in self.attributes.items():
            if key.startswith(prefix):
                try:
                    result[key[len(prefix) :]] = json.loads(value)
                except (TypeError, ValueError):
                    result[key[len(prefix) :]] = value
        return result


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    size: int


def dead_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _json_any_value(value: dict[str, Any]) -> Any:
    if not value:
        return None
    (kind, inner), *_ = value.items()
    if kind == "arrayValue":
        return [_json_any_value(v) for v in inner.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: _json_any_value(kv.get("value", {})) for kv in inner.get("values", [])}
    if kind == "intValue":
        return int(inner)
    return inner


def _spans_from_protobuf(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _any_value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        attributes={a.key: _any_value(a.value) for a in span.attributes},
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


def _spans_from_json(body: bytes) -> list[ReceivedSpan]:
    """OTLP/JSON: camelCase keys, hex ids."""
    data = json.loads(body)
    spans = []
    for resource_spans in data.get("resourceSpans", []):
        resource = {
            a["key"]: _json_any_value(a.get("value", {}))
            for a in resource_spans.get("resource", {}).get("attributes", [])
        }
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                spans.append(
                    ReceivedSpan(
                        name=span.get("name", ""),
                        trace_id=span.get("traceId", "").lower(),
                        span_id=span.get("spanId", "").lower(),
                        parent_span_id=span.get("parentSpanId", "").lower() or None,
                        attributes={
                            a["key"]: _json_any_value(a.get("value", {}))
                            for a in span.get("attributes", [])
                        },
                        resource=resource,
                        scope=scope_spans.get("scope", {}).get("name", ""),
                    )
                )
    return spans


class LangfuseReceiver:
    def __init__(self, *, delay: float = 0.0, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self.spans: list[ReceivedSpan] = []
        self.scores: list[dict[str, Any]] = []
        self.requests: list[ReceivedRequest] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the receiver is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LangfuseReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases answers held by ``delay``
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def release(self) -> None:
        """Answer everything now: held answers return, new ones are not held."""
        self.delay = 0.0
        self._stopping.set()

    def __enter__(self) -> LangfuseReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reading what arrived --------------------------------------------------------------------

    def wait_for_spans(
        self,
        predicate: Callable[[ReceivedSpan], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[ReceivedSpan]:
        """The spans matching ``predicate`` once ``count`` of them arrived; else AssertionError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [s for s in self.spans if predicate is None or predicate(s)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [(s.name, s.trace_id) for s in self.spans]
                    raise AssertionError(
                        f"expected {count} matching span(s) within {timeout}s, got "
                        f"{len(found)}; received: {names}; errors: {self.errors}"
                    )
                self._changed.wait(remaining)

    def wait_for_scores(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """The scores matching ``predicate`` once ``count`` of them arrived; else AssertionError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [s for s in self.scores if predicate is None or predicate(s)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} matching score(s) within {timeout}s, got "
                        f"{len(found)}; received: {self.scores}; errors: {self.errors}"
                    )
                self._changed.wait(remaining)

    def _record_scores(self, scores: list[dict[str, Any]]) -> None:
        with self._changed:
            self.scores.extend(scores)
            self._changed.notify_all()

    def spans_for_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._changed:
            return [s for s in self.spans if s.trace_id == trace_id]

    def trace_requests(self) -> list[ReceivedRequest]:
        with self._changed:
            return [r for r in self.requests if r.path == TRACES_PATH]

    # Called by the handler -------------------------------------------------------------------

    def _record(self, request: ReceivedRequest, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self.requests.append(request)
            self.spans.extend(spans)
            self._changed.notify_all()

    def _hold(self) -> None:
        if self.delay > 0:
            self._stopping.wait(self.delay)


class _Handler(BaseHTTPRequestHandler):
    owner: LangfuseReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
        return raw

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except _DISCONNECT_ERRORS:  # the SDK gave up waiting (its timeout): fine
            pass

    def _handle(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else b""
        request = ReceivedRequest(self.command, path, dict(self.headers.items()), len(body))
        spans: list[ReceivedSpan] = []
        content_type = self.headers.get("Content-Type", "")
        if path == TRACES_PATH and self.command == "POST":
            try:
                spans = (
                    _spans_from_json(body)
                    if "json" in content_type
                    else (_spans_from_protobuf(body))
                )
            except Exception as exc:  # record it, and answer 400 as a collector would
                self.owner.errors.append(f"{type(exc).__name__}: {exc}")
                self.owner._record(request, [])
                self._answer(400, b'{"message": "bad request"}', "application/json")
                return
        if path == SCORES_PATH and self.command == "POST":
            try:
                posted = json.loads(body or b"[]")
                self.owner._record_scores(posted if isinstance(posted, list) else [posted])
            except ValueError as exc:
                self.owner.errors.append(f"scores: {exc}")
        self.owner._record(request, spans)
        self.owner._hold()
        if path == TRACES_PATH:
            status = self.owner.status
            if "json" in content_type:
                self._answer(status, b"{}", "application/json")
            else:
                payload = ExportTraceServiceResponse().SerializeToString()
                self._answer(status, payload, "application/x-protobuf")
        elif path.endswith("/health"):
            self._answer(200, b'{"status": "OK", "version": "test"}', "application/json")
        elif path.endswith("/projects"):
            projects = {"data": [{"id": "test-project", "name": "test", "metadata": {}}]}
            self._answer(200, json.dumps(projects).encode(), "application/json")
        else:  # scores, media, ingestion, ...: accepted
            self._answer(200, b"{}", "application/json")

    do_GET = do_POST = do_PUT = do_PATCH = _handle
