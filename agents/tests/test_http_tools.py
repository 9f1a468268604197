"""Tests for the SSRF-protected HTTP tools.

Real stdlib HTTP servers on loopback stand in for remote sites; ``allowed_networks`` exempts
127.0.0.1 only where a test needs to reach its own server, and injected resolvers simulate DNS.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from agents.graph.fetch import HttpToolConfig
from agents.graph.ssrf import BlockedRequestError, UrlPolicy, check_url
from agents.graph.tools import create_http_tools

LOCAL = ("127.0.0.1/32",)
PUBLIC_IP = "93.184.216.34"


# --------------------------------------------------------------------------------------------
# Test servers


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    requests: list[dict] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def host(self) -> str:
        return self.httpd.server_address[0]

    def url(self, path: str = "/", scheme: str = "http", host: str | None = None) -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        )
        return body

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        body = self._record()
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/echo":
            payload = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            self._send(200, json.dumps(payload).encode(), "application/json")
        elif route == "/redirect":
            status = int(query.get("status", "302"))
            self._send(status, b"", "text/plain", Location=query["to"])
        elif route == "/loop":
            self._send(302, b"", "text/plain", Location="/loop")
        elif route == "/big":
            self._send(200, b"x" * 500_000, "text/plain")
        elif route == "/binary":
            self._send(200, bytes(range(256)) * 4, "image/png")
        elif route == "/slow":
            time.sleep(5)
            self._send(200, b"late", "text/plain")
        elif route == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif route == "/status":
            self._send(int(query["code"]), b"custom error page", "text/html")
        else:
            self._send(404, b"not found", "text/plain")

    do_GET = do_POST = do_PUT = _handle


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response (timeouts, caps) are expected here.
        pass


def start_server(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Server:
    httpd = QuietServer((host, 0), Handler)
    record = Server(httpd)
    httpd.record = record
    if tls is not None:

        def remember_sni(sock: ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
            record.sni.append(name)

        tls.sni_callback = remember_sni
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return record


@pytest.fixture
def server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def sent_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host httpx actually opened a request to (after pinning this is an IP)."""
    hosts: list[str] = []
    original = httpx.Client.send

    def spy(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        hosts.append(request.url.host)
        return original(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", spy)
    return hosts


def fixed_resolver(mapping: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return mapping[host]

    return resolve


def tools(config: HttpToolConfig) -> tuple:
    get_tool, post_tool = create_http_tools(config)
    return get_tool, post_tool


def call(tool, **args: object) -> dict:
    result = tool.invoke(args)
    assert isinstance(result, str)
    return json.loads(result)


# --------------------------------------------------------------------------------------------
# URL / address validation


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 wrapping 10.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
    ],
)
def test_check_url_blocks_non_public_targets(url: str) -> None:
    with pytest.raises(BlockedRequestError) as info:
        check_url(url, UrlPolicy())
    assert info.value.code == "blocked"
    assert info.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/",
        "gopher://example.com:70/_x",
        "javascript:alert(1)",
        "/relative/path",
        "http:///no-host",
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "http://0177.0.0.1/",  # httpx refuses ambiguous octal dotted quads outright
    ],
)
def test_check_url_rejects_invalid_urls(url: str) -> None:
    with pytest.raises(BlockedRequestError) as info:
        check_url(url, UrlPolicy(resolver=fixed_resolver({"example.com": [PUBLIC_IP]})))
    assert info.value.code == "invalid_url"


def test_check_url_accepts_public_address_and_any_port() -> None:
    config = UrlPolicy(resolver=fixed_resolver({"example.com": [PUBLIC_IP]}))
    url, ips = check_url("https://Example.com:8443/a?b=1", config)
    assert url.host == "example.com"
    assert url.port == 8443
    assert [str(ip) for ip in ips] == [PUBLIC_IP]
    _, ips = check_url("http://[2606:4700:4700::1111]/", config)
    assert [str(ip) for ip in ips] == ["2606:4700:4700::1111"]


def test_ipv4_mapped_public_address_is_normalised() -> None:
    _, ips = check_url("http://[::ffff:8.8.8.8]/", UrlPolicy())
    assert [str(ip) for ip in ips] == ["8.8.8.8"]


def test_hostname_resolving_to_private_ip_is_blocked() -> None:
    config = UrlPolicy(resolver=fixed_resolver({"internal.example.com": ["10.1.2.3"]}))
    with pytest.raises(BlockedRequestError, match=re.escape("10.1.2.3")):
        check_url("http://internal.example.com/", config)


def test_hostname_resolving_to_mixed_public_and_private_ips_is_blocked() -> None:
    config = UrlPolicy(resolver=fixed_resolver({"mixed.example.com": [PUBLIC_IP, "192.168.0.10"]}))
    with pytest.raises(BlockedRequestError, match=re.escape("192.168.0.10")):
        check_url("http://mixed.example.com/", config)


def test_dns_failure_is_reported() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(BlockedRequestError) as info:
        check_url("http://nope.invalid/", UrlPolicy(resolver=broken))
    assert info.value.code == "dns_error"


def test_allowed_networks_exempt_private_ranges_but_never_metadata() -> None:
    config = UrlPolicy(
        allowed_networks=("10.0.0.0/8", "169.254.0.0/16"),
        resolver=fixed_resolver({"intranet.corp": ["10.1.2.3"]}),
    )
    _, ips = check_url("http://intranet.corp/", config)
    assert [str(ip) for ip in ips] == ["10.1.2.3"]
    with pytest.raises(BlockedRequestError, match="metadata"):
        check_url("http://169.254.169.254/", config)
    with pytest.raises(BlockedRequestError, match="metadata"):
        check_url("http://metadata.google.internal/", config)
    with pytest.raises(BlockedRequestError):
        check_url("http://192.168.1.1/", config)


def test_allowed_hosts_exact_and_wildcard() -> None:
    resolver = fixed_resolver(
        {
            name: [PUBLIC_IP]
            for name in (
                "api.other.org",
                "a.example.com",
                "deep.a.example.com",
                "example.com",
                "evil.com",
                "a.example.com.evil.com",
                "notexample.com",
            )
        }
    )
    config = UrlPolicy(allowed_hosts=("*.example.com", "API.Other.org"), resolver=resolver)
    for ok in ("http://api.other.org/", "https://a.example.com/", "http://DEEP.a.example.com/"):
        check_url(ok, config)
    for bad in (
        "http://example.com/",
        "http://evil.com/",
        "http://a.example.com.evil.com/",
        "http://notexample.com/",
    ):
        with pytest.raises(BlockedRequestError, match="allowed hosts"):
            check_url(bad, config)


# --------------------------------------------------------------------------------------------
# Tool behaviour against real servers


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/echo",
        "http://localhost:{port}/echo",
        "http://[::1]:{port}/echo",
        "http://2130706433:{port}/echo",
        "http://0x7f000001:{port}/echo",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
        "http://[::ffff:127.0.0.1]:{port}/echo",
        "http://0.0.0.0:{port}/echo",
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "gopher://127.0.0.1:{port}/_GET",
    ],
)
def test_tool_refuses_without_contacting(server: Server, sent_hosts: list[str], url: str) -> None:
    get_tool, _ = tools(HttpToolConfig())
    result = call(get_tool, url=url.format(port=server.port))
    assert result["code"] in {"blocked", "invalid_url"}
    assert result["error"]
    assert sent_hosts == []
    assert server.requests == []


def test_get_reaches_exempted_local_server(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url("/echo?x=1"), headers={"Accept": "application/json"})
    assert result["status_code"] == 200
    assert result["url"] == server.url("/echo?x=1")
    assert result["content_type"] == "application/json"
    assert result["truncated"] is False
    echoed = json.loads(result["body"])
    assert echoed["method"] == "GET"
    assert echoed["headers"]["accept"] == "application/json"
    assert echoed["headers"]["user-agent"] == "django-agent-http-tool/1.0"


def test_error_status_is_returned_as_result(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url("/status?code=503"))
    assert result["status_code"] == 503
    assert result["body"] == "custom error page"


def test_dangerous_request_headers_are_stripped(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(
        get_tool,
        url=server.url("/echo"),
        headers={
            "Host": "evil.example",
            "Transfer-Encoding": "chunked",
            "Connection": "upgrade",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "User-Agent": "spoofed",
            "X-Custom": "kept",
        },
    )
    echoed = json.loads(result["body"])
    headers = echoed["headers"]
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert "transfer-encoding" not in headers
    assert "proxy-authorization" not in headers
    assert headers["user-agent"] == "django-agent-http-tool/1.0"
    assert headers["x-custom"] == "kept"


def test_header_injection_is_rejected(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url("/echo"), headers={"X-A": "b\r\nHost: evil"})
    assert result["code"] == "invalid_request"
    assert server.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Name": "Jos\u00e9"},
        {"X-Emoji": "\U0001f600"},
        {"X-\u00e9": "v"},
        {"bad name": "v"},
        {"": "v"},
    ],
    ids=["latin-1-value", "emoji-value", "non-ascii-name", "space-in-name", "empty-name"],
)
def test_invalid_header_is_a_tool_error_not_a_crash(server: Server, headers: dict) -> None:
    get_tool, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    for tool in (get_tool, post_tool):
        result = call(tool, url=server.url("/echo"), headers=headers)
        assert result["code"] == "invalid_request", result
    assert server.requests == []


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin"]
)
def test_redirect_to_blocked_address_is_refused(
    server: Server, sent_hosts: list[str], target: str
) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url(f"/redirect?to={target}"))
    assert result["code"] == "blocked"
    # Only the exempted server was ever contacted; the redirect target never was.
    assert sent_hosts == ["127.0.0.1"]
    assert len(server.requests) == 1


def test_redirect_to_other_loopback_server_is_refused(server: Server) -> None:
    other = start_server("127.0.0.2")
    try:
        get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
        result = call(get_tool, url=server.url(f"/redirect?to={other.url('/echo')}"))
        assert result["code"] == "blocked"
        assert "127.0.0.2" in result["error"]
        assert len(server.requests) == 1
        assert other.requests == []
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_relative_redirect_is_followed(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url("/redirect?to=/echo%3Fafter=1"))
    assert result["status_code"] == 200
    assert result["url"] == server.url("/echo?after=1")
    assert [r["path"] for r in server.requests][-1] == "/echo?after=1"


def test_too_many_redirects(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL, max_redirects=2))
    result = call(get_tool, url=server.url("/loop"))
    assert result["code"] == "too_many_redirects"
    assert len(server.requests) == 3


def test_credentials_dropped_on_cross_origin_redirect(server: Server) -> None:
    config = HttpToolConfig(
        allowed_networks=LOCAL, resolver=fixed_resolver({"other.test": ["127.0.0.1"]})
    )
    get_tool, _ = tools(config)
    target = server.url("/echo", host="other.test")
    result = call(
        get_tool,
        url=server.url(f"/redirect?to={target}"),
        headers={"Authorization": "Bearer secret", "Cookie": "a=b", "X-Keep": "1"},
    )
    headers = json.loads(result["body"])["headers"]
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert headers["x-keep"] == "1"
    assert server.requests[0]["headers"]["authorization"] == "Bearer secret"


def test_pinning_connects_to_checked_ip_with_original_host_header(server: Server) -> None:
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL, resolver=resolver))
    url = server.url("/echo", host="pinned.test")
    result = call(get_tool, url=url)
    assert result["status_code"] == 200
    assert result["url"] == url
    assert json.loads(result["body"])["headers"]["host"] == f"pinned.test:{server.port}"
    # Resolved exactly once: nothing downstream performs a second (rebindable) lookup.
    assert calls == [("pinned.test", server.port)]


def test_hostname_resolving_to_blocked_ip_is_refused_by_tool(
    server: Server, sent_hosts: list[str]
) -> None:
    # 127.0.0.1 is where the server really is, but without the exemption it must be refused.
    get_tool, _ = tools(HttpToolConfig(resolver=fixed_resolver({"rebind.test": ["127.0.0.1"]})))
    result = call(get_tool, url=server.url("/echo", host="rebind.test"))
    assert result["code"] == "blocked"
    assert sent_hosts == []
    assert server.requests == []


def test_response_size_cap(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL, max_response_bytes=1000))
    result = call(get_tool, url=server.url("/big"))
    assert result["status_code"] == 200
    assert result["truncated"] is True
    assert result["body"] == "x" * 1000


def test_binary_body_is_omitted(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(get_tool, url=server.url("/binary"))
    assert result["status_code"] == 200
    assert "binary content" in result["body"]


def test_timeout_on_slow_server(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL, timeout_seconds=0.5))
    start = time.monotonic()
    result = call(get_tool, url=server.url("/slow"))
    assert result["code"] == "timeout"
    assert time.monotonic() - start < 2


def test_timeout_covers_slowly_dripping_body(server: Server) -> None:
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL, timeout_seconds=0.5))
    start = time.monotonic()
    result = call(get_tool, url=server.url("/drip"))
    assert result["code"] == "timeout"
    assert time.monotonic() - start < 2


def test_connection_refused_is_reported() -> None:
    srv = start_server()
    url = srv.url("/echo")
    srv.httpd.shutdown()
    srv.httpd.server_close()
    get_tool, _ = tools(HttpToolConfig(allowed_networks=LOCAL))
    assert call(get_tool, url=url)["code"] == "connection_error"


def test_post_json_echo(server: Server) -> None:
    _, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(post_tool, url=server.url("/echo"), json_body={"a": [1, 2], "b": "ü"})
    assert result["status_code"] == 200
    echoed = json.loads(result["body"])
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": [1, 2], "b": "ü"}


def test_post_raw_data_with_content_type(server: Server) -> None:
    _, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(
        post_tool,
        url=server.url("/echo"),
        data="a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    echoed = json.loads(result["body"])
    assert echoed["body"] == "a=1&b=2"
    assert echoed["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_post_rejects_both_bodies(server: Server) -> None:
    _, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(post_tool, url=server.url("/echo"), json_body={"a": 1}, data="x")
    assert result["code"] == "invalid_request"
    assert server.requests == []


@pytest.mark.parametrize("status", [303, 302, 301])
def test_redirect_after_post_becomes_get(server: Server, status: int) -> None:
    _, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(
        post_tool, url=server.url(f"/redirect?status={status}&to=/echo"), json_body={"a": 1}
    )
    echoed = json.loads(result["body"])
    assert echoed["method"] == "GET"
    assert echoed["body"] == ""
    assert "content-type" not in echoed["headers"]
    assert server.requests[0]["method"] == "POST"


def test_307_after_post_keeps_method_and_body(server: Server) -> None:
    _, post_tool = tools(HttpToolConfig(allowed_networks=LOCAL))
    result = call(post_tool, url=server.url("/redirect?status=307&to=/echo"), json_body={"a": 1})
    echoed = json.loads(result["body"])
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"a": 1}


# --------------------------------------------------------------------------------------------
# Tool metadata and schema


def test_tools_metadata_and_schema() -> None:
    get_tool, post_tool = create_http_tools(HttpToolConfig(allowed_hosts=("api.example.com",)))
    assert (get_tool.name, post_tool.name) == ("http_get", "http_post")
    assert "api.example.com" in get_tool.description
    assert "truncated" in post_tool.description
    assert set(post_tool.args) == {"url", "json_body", "data", "headers"}
    assert set(get_tool.args) == {"url", "headers"}


def test_tool_invoke_returns_json_string_for_blocked_url() -> None:
    get_tool, _ = create_http_tools(HttpToolConfig())
    result = get_tool.invoke({"url": "http://169.254.169.254/"})
    assert isinstance(result, str)
    assert json.loads(result)["code"] == "blocked"


def test_tool_call_format_returns_tool_message() -> None:
    get_tool, _ = create_http_tools(HttpToolConfig())
    message = get_tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": "http_get", "args": {"url": "ftp://x/"}}
    )
    assert message.tool_call_id == "call-1"
    assert json.loads(message.content)["code"] == "invalid_url"


def test_missing_url_raises_validation_error() -> None:
    # Surfaced on purpose: LangGraph's ToolNode converts it into an error ToolMessage.
    get_tool, post_tool = create_http_tools(HttpToolConfig())
    with pytest.raises(ValidationError):
        get_tool.invoke({"headers": {"A": "b"}})
    with pytest.raises(ValidationError):
        post_tool.invoke({"json_body": {"a": 1}})


def test_invalid_allowed_networks_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="not-a-cidr"):
        HttpToolConfig(allowed_networks=("not-a-cidr",))


# --------------------------------------------------------------------------------------------
# HTTPS: SNI and certificate verification use the hostname while connecting to the pinned IP


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=http-tools test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    run(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=pinned.test",
    )  # fmt: skip
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:pinned.test\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-out", "leaf.pem", "-extfile", "leaf.ext",
    )  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "leaf.pem", "key": d / "leaf.key"}


@pytest.fixture
def tls_server(tls_files: dict[str, Path]) -> Iterator[Server]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    srv = start_server(tls=ctx)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _tls_config(tls_files: dict[str, Path], **kwargs: object) -> HttpToolConfig:
    return HttpToolConfig(
        allowed_networks=LOCAL,
        resolver=fixed_resolver({"pinned.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]}),
        ssl_context=ssl.create_default_context(cafile=str(tls_files["ca"])),
        **kwargs,
    )


def test_https_pinning_uses_hostname_for_sni_and_verification(
    tls_server: Server, tls_files: dict[str, Path], sent_hosts: list[str]
) -> None:
    get_tool, _ = tools(_tls_config(tls_files))
    url = tls_server.url("/echo", scheme="https", host="pinned.test")
    result = call(get_tool, url=url)
    assert result["status_code"] == 200, result
    assert result["url"] == url
    assert json.loads(result["body"])["headers"]["host"] == f"pinned.test:{tls_server.port}"
    assert tls_server.sni == ["pinned.test"]
    assert sent_hosts == ["127.0.0.1"]


def test_https_certificate_must_match_original_hostname(
    tls_server: Server, tls_files: dict[str, Path]
) -> None:
    get_tool, _ = tools(_tls_config(tls_files))
    result = call(get_tool, url=tls_server.url("/echo", scheme="https", host="wrong.test"))
    assert result["code"] == "tls_error"
    assert tls_server.requests == []
