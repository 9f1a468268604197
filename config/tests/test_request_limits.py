"""Large and slow requests against a live server, over raw sockets: a body over the cap is a
413 without being read (Content-Length or chunked, JSON, form or multipart, on an endpoint
that needs no login); a body that never completes is a 408; headers that never complete, or a
connection that sends nothing, are cut off."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from testing.live import database_env, run_gunicorn, run_server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
LIMITS = {
    "REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "REQUEST_BODY_MAX_BYTES": "1048576",
}


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[tuple[str, int]]:
    with django_db_blocker.unblock():
        env = {**database_env(), **LIMITS}
    with run_server(env) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.settimeout(10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (fails after ``seconds``)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {seconds} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str):
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == code


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_declared_100_mb_body_is_refused_unread(server, content_type):
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Content-Type: {content_type}\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
        + b"x" * 1000
    )
    status, headers, body = read_response(sock)
    assert_json_error(
        status, headers, body, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large"
    )
    assert time.monotonic() - started < 2
    closed_within(sock, 5)


def test_a_chunked_body_is_cut_off_at_the_cap(server):
    sock = connect(server)
    sock.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"y" * 65536
    sent = 0
    try:
        while sent < 100 * 1024 * 1024:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert sent < 20 * 1024 * 1024  # the server stopped reading long before the end
    try:
        status, headers, body = read_response(sock)
    except (ConnectionResetError, IndexError):
        return  # the server closed before we could read its 413: it did not read the body
    assert_json_error(
        status, headers, body, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large"
    )


def test_a_body_within_the_cap_still_works(server):
    sock = connect(server)
    payload = json.dumps({"refresh": "x" * 500_000}).encode()
    sock.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, HTTPStatus.BAD_REQUEST, "token_not_valid")


def test_a_body_that_never_completes_is_a_408(server):
    sock = connect(server)
    sock.sendall(
        b"POST /api/v1/login/access-token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername="
    )
    started = time.monotonic()
    status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, HTTPStatus.REQUEST_TIMEOUT, "request_timeout")
    assert BODY_TIMEOUT - 0.5 < time.monotonic() - started < BODY_TIMEOUT + 3


def test_a_dripping_body_is_a_408_too(server):
    sock = connect(server)
    sock.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    try:
        for _ in range(int(BODY_TIMEOUT * 4)):
            sock.sendall(b" ")
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, HTTPStatus.REQUEST_TIMEOUT, "request_timeout")
    assert time.monotonic() - started < BODY_TIMEOUT + 4


def test_headers_that_never_complete_are_cut_off(server):
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    try:
        for _ in range(int(HEADER_TIMEOUT * 4)):
            sock.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        pass
    elapsed = time.monotonic() - started + closed_within(sock, HEADER_TIMEOUT + 5)
    assert elapsed < HEADER_TIMEOUT + 4


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = connect(server)
    assert closed_within(sock, HEADER_TIMEOUT + 5) >= HEADER_TIMEOUT - 0.5


def test_a_kept_alive_connection_serves_a_second_request(server):
    sock = connect(server)
    for _ in range(2):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == HTTPStatus.OK, body
        time.sleep(0.5)


def test_gunicorn_workers_cut_off_slow_headers_too():
    with run_gunicorn({**database_env(), **LIMITS}, workers=1) as url:
        host, port = url.removeprefix("http://").split(":")
        sock = connect((host, int(port)))
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert closed_within(sock, HEADER_TIMEOUT + 5) < HEADER_TIMEOUT + 4
        sock = connect((host, int(port)))
        sock.sendall(
            b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
        )
        status, headers, body = read_response(sock)
        assert_json_error(
            status, headers, body, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request_too_large"
        )
