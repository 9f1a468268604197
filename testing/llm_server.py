"""A small, realistic OpenAI-compatible HTTP server for tests (stdlib only).

Usage::

    with FakeLLMServer() as server:
        server.enqueue(Reply.text("hello there"), Reply.tool_calls([("add", {"a": 1})]))
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-test")
        ...
        assert server.requests[0]["messages"][-1]["content"] == "hi"

It serves ``POST /v1/chat/completions`` (plain JSON or SSE streaming with chunked transfer
encoding, flushed chunk by chunk) and ``GET /v1/models``. Replies are scripted with
:class:`Reply` and consumed FIFO; when the queue is empty ``default_reply`` is used, or a
deterministic ``"echo: <last user message>"`` text.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class Reply:
    """One scripted answer to a ``chat.completions`` request."""

    content: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    prompt_tokens: int = 11
    completion_tokens: int = 7
    delay: float = 0.0
    chunk_delay: float = 0.0
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    # Sent as-is with a 200 instead of a completion: a broken upstream.
    raw: str | bytes | None = None

    @classmethod
    def text(
        cls,
        content: str,
        *,
        prompt_tokens: int = 11,
        completion_tokens: int = 7,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        return cls(
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            delay=delay,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: list[tuple[str, dict[str, Any]]],
        *,
        content: str = "",
        prompt_tokens: int = 11,
        completion_tokens: int = 7,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        return cls(
            content=content,
            calls=list(calls),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            delay=delay,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "upstream failure",
        *,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error answer; ``headers`` e.g. ``{"Retry-After": "1"}`` on a 429."""
        return cls(status=status, message=message, delay=delay, headers=dict(headers or {}))

    @classmethod
    def garbage(
        cls, body: str | bytes = '{"choices": [{"message": tru', *, delay: float = 0.0
    ) -> Reply:
        """A 200 whose body (or, streamed, whose event) is not valid JSON: malformed output."""
        return cls(raw=body, delay=delay)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Sleep ``seconds`` before answering (an empty text), to trigger client timeouts."""
        return cls(content="", delay=seconds)

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _message_text(content: Any) -> str:
    if isinstance(content, list):  # multimodal content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _split_words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text)


def _split_fixed(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _has_content(event: dict[str, Any]) -> bool:
    return any((c.get("delta") or {}).get("content") for c in event.get("choices") or [])


class _ClientGone(Exception):
    """The client disconnected while we were writing a response."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    # -- plumbing -------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK (~40 ms), a latency no real server has.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:12]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        type_, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
        error = {"message": message, "type": type_, "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)

    def _peer_closed(self) -> bool:
        try:
            self.connection.setblocking(False)
            try:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
            finally:
                self.connection.setblocking(True)
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _send_raw(self, raw: str | bytes, *, stream: bool) -> None:
        text = raw if isinstance(raw, bytes) else raw.encode()
        body = b"data: " + text + b"\n\n" if stream else text
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.server.owner.known_models()
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"Unknown path: {self.path}")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError):
            self._send_error(400, "Request body is not valid JSON")
            return
        if path != "/v1/chat/completions":
            self._send_error(404, f"Unknown path: {self.path}")
            return
        if not isinstance(body, dict):
            self._send_error(400, "Request body must be a JSON object")
            return
        owner = self.server.owner
        arrived = time.monotonic()
        reply = owner._next_reply(body)
        stream = bool(body.get("stream"))
        owner._enter()
        self.first_token_at: float | None = None
        try:
            if reply.delay and owner._sleep(reply.delay):
                raise _ClientGone  # the server is stopping: drop the request
            if reply.delay and self._peer_closed():
                raise _ClientGone  # it gave up waiting (a timeout): nothing is delivered
            if reply.is_error:
                self._send_error(reply.status, reply.message, reply.headers)
            elif reply.raw is not None:
                self._send_raw(reply.raw, stream=stream)
            elif stream:
                self._stream(body, reply)
            else:
                self._send_json(200, owner._completion(body, reply), reply.headers)
                owner._record_usage(reply)
        except (_ClientGone, *_DISCONNECT_ERRORS):
            self.close_connection = True
            if stream and not reply.is_error and not owner._stopping.is_set():
                owner._record_cancelled(body)
            return
        finally:
            owner._leave()
        owner._record_finished()
        if owner.record_timings:
            owner._record_timing(body, arrived, self.first_token_at or time.monotonic())

    # -- streaming ------------------------------------------------------------------------
    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:12]}")
        self.end_headers()
        for i, event in enumerate(owner._chunks(body, reply)):
            if i and reply.chunk_delay and owner._sleep(reply.chunk_delay):
                raise _ClientGone
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if self.first_token_at is None and _has_content(event):
                self.first_token_at = time.monotonic()
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            owner._record_usage(reply)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: FakeLLMServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Keep test output quiet on disconnects / shutdown races; still report real bugs.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeLLMServer:
    """OpenAI-compatible chat completions server running in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.cancelled: list[dict[str, Any]] = []  # request bodies of streams cut short
        self.finished_at: list[float] = []  # time.monotonic() of each completed response
        self.received_at: list[float] = []  # time.monotonic() of each request, in order
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most answered at once (concurrency seen by the server)
        # Tokens this server reported in the usage of the answers it sent in full.
        self.usage_reported = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.default_reply: Reply | None = None
        # Called for each request when nothing is queued: the reply for that request body.
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        # With ``record_timings``, ``timings`` gets (request body, arrived, first content, end)
        # per answered request, in time.monotonic() seconds (comparable across processes).
        self.record_timings = False
        self.timings: list[tuple[dict[str, Any], float, float, float]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._call_counter = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in delay / chunk_delay
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.cancelled.clear()
            self.finished_at.clear()
            self.received_at.clear()
            self.max_in_flight = 0
            self.timings.clear()
            self._call_counter = 0
            self.usage_reported = dict.fromkeys(self.usage_reported, 0)

    @property
    def cancelled_count(self) -> int:
        return len(self.cancelled)

    def known_models(self) -> list[str]:
        with self._lock:
            seen = [r["model"] for r in self.requests if isinstance(r.get("model"), str)]
        return list(dict.fromkeys(["gpt-test", *seen]))

    # -- internals used by the handler ----------------------------------------------------
    def _sleep(self, seconds: float) -> bool:
        """Sleep; return True if the server is stopping."""
        return self._stopping.wait(seconds)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.received_at.append(time.monotonic())
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        if self.default_reply is not None:
            return self.default_reply
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        last = _message_text(users[-1].get("content")) if users else ""
        return Reply.text(f"echo: {last}")

    def _record_finished(self) -> None:
        with self._lock:
            self.finished_at.append(time.monotonic())

    def _record_timing(self, body: dict[str, Any], arrived: float, first: float) -> None:
        with self._lock:
            self.timings.append((body, arrived, first, time.monotonic()))

    def _record_usage(self, reply: Reply) -> None:
        with self._lock:
            for key, value in reply.usage.items():
                self.usage_reported[key] += value

    def _record_cancelled(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.cancelled.append(body)

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        calls = []
        with self._lock:
            for name, args in reply.calls:
                self._call_counter += 1
                calls.append(
                    {
                        "id": f"call_{self._call_counter}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                )
        return calls

    @staticmethod
    def _envelope(body: dict[str, Any], obj: str, cid: str) -> dict[str, Any]:
        return {
            "id": cid,
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model") or "gpt-test",
            "system_fingerprint": "fp_fake",
        }

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        tool_calls = self._tool_calls(reply)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content or (None if tool_calls else ""),
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "tool_calls" if tool_calls else "stop",
        }
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        return {
            **self._envelope(body, "chat.completion", cid),
            "choices": [choice],
            "usage": reply.usage,
        }

    def _chunks(self, body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
        """The ``chat.completion.chunk`` events of a streamed reply (without ``[DONE]``)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = self._envelope(body, "chat.completion.chunk", f"chatcmpl-{uuid.uuid4().hex[:24]}")
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [choice]}

        tool_calls = self._tool_calls(reply)
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": word}) for word in _split_words(reply.content)]
        for index, call in enumerate(tool_calls):
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            for part in _split_fixed(call["function"]["arguments"]):
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
        events.append(chunk({}, "tool_calls" if tool_calls else "stop"))
        if include_usage:
            events.append({**base, "choices": [], "usage": reply.usage})
        return events
