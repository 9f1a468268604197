"""The HTTP tools' request: pinned to the checked addresses, size-capped, redirects re-checked.

* **IP pinning.** The connection is made to an address :func:`agents.graph.ssrf.check_url`
  passed: the request URL's host is replaced by that IP, the ``Host`` header carries the
  original authority and, for HTTPS, httpcore's ``sni_hostname`` request extension makes TLS
  send SNI for, and verify the certificate against, the original hostname. No second DNS lookup
  happens, so a DNS-rebinding answer between "check" and "connect" cannot redirect us to an
  internal address. Each hop uses a fresh client, so a pooled TLS connection verified for one
  hostname is never reused for another hostname that happens to share the IP.
* Redirects are followed by hand, each ``Location`` going through the same checks; credentials
  are dropped when a redirect leaves the origin.
* The whole call (every hop and reading the body) has one deadline; the body is cut off after
  ``max_response_bytes`` and only identity-encoded bodies are asked for.
* Proxy settings from the environment are ignored (``trust_env=False``): a proxy would do its own
  DNS resolution and defeat the pinning.

Django is intentionally not imported; ``agents.directory`` builds an :class:`HttpToolConfig`
from settings.
"""

from __future__ import annotations

import codecs
import logging
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from agents.graph.ssrf import (
    BlockedRequestError,
    IPAddress,
    Resolver,
    UrlPolicy,
    check_url,
    parse_literal_ip,
)

__all__ = ["FetchError", "FetchResult", "HttpToolConfig", "fetch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpToolConfig:
    timeout_seconds: float = 10.0
    """Budget for the whole tool call (connect, every redirect hop and reading the body)."""
    max_response_bytes: int = 100_000
    """Body bytes kept (after content decoding); the rest is never read."""
    max_redirects: int = 5
    allowed_hosts: tuple[str, ...] = ()
    """If non-empty, only these hostnames (see :class:`~agents.graph.ssrf.UrlPolicy`)."""
    allowed_networks: tuple[str, ...] = ()
    """CIDRs exempted from the non-public address block (intranet services, tests)."""
    user_agent: str = "django-agent-http-tool/1.0"
    resolver: Resolver | None = None
    """``(host, port) -> [ip, ...]``; defaults to ``socket.getaddrinfo``."""
    ssl_context: ssl.SSLContext | None = None
    """Custom trust store (e.g. an intranet CA). ``None`` means httpx's default verification.
    There is deliberately no way to switch verification off."""
    policy: UrlPolicy = field(init=False, repr=False, compare=False)
    """The URL policy made of ``allowed_hosts``, ``allowed_networks`` and ``resolver``."""

    def __post_init__(self) -> None:
        policy = UrlPolicy(
            allowed_hosts=self.allowed_hosts,
            allowed_networks=self.allowed_networks,
            resolver=self.resolver,
        )
        object.__setattr__(self, "policy", policy)


@dataclass(frozen=True)
class FetchResult:
    status_code: int
    url: str
    """The final URL, after redirects."""
    content_type: str | None
    body: str
    """Decoded text, or a placeholder for a binary body."""
    truncated: bool


class FetchError(Exception):
    """The request did not produce a response. ``message`` is safe to show to the model;
    ``code`` is one of blocked, invalid_url, dns_error, timeout, connection_error, tls_error,
    too_many_redirects, invalid_request, http_error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Headers the model may not set: framing/connection control would let it smuggle requests or
# break the pinning (Host), proxy headers are meaningless without a proxy, and the user agent
# identifies this deployment to remote operators.
_STRIPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
        "user-agent",
        # Compressed bodies would be inflated before the size cap applies (a few KiB of zstd
        # expand to hundreds of MiB): only identity-encoded bodies are asked for.
        "accept-encoding",
    }
)

# Browsers drop these when a redirect leaves the origin; so do we.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})

_TEXTUAL_CONTENT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/ecmascript",
    "application/x-www-form-urlencoded",
    "application/yaml",
    "application/x-yaml",
    "application/x-ndjson",
    "application/graphql",
    "application/csv",
)


# RFC 9110 field names: one or more "tchar".
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _clean_headers(headers: dict[str, str] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for key, value in (headers or {}).items():
        lower = key.strip().lower()
        if lower in _STRIPPED_REQUEST_HEADERS or lower.startswith("proxy-"):
            continue
        # h11 would reject these too, but a clear message helps the model fix its call.
        if any(c in key + value for c in "\r\n\0"):
            raise FetchError("invalid_request", f"Header {key!r} contains a control character.")
        if not _HEADER_NAME.fullmatch(key.strip()):
            raise FetchError("invalid_request", f"Header name {key!r} is not a valid token.")
        if not value.isascii():  # httpx encodes header values as ASCII (a crash otherwise)
            raise FetchError(
                "invalid_request",
                f"Header {key!r} has non-ASCII characters: percent-encode or drop them.",
            )
        cleaned[key.strip()] = value
    return cleaned


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _is_textual(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        not media
        or media.startswith("text/")
        or media.endswith(("+json", "+xml"))
        or media in _TEXTUAL_CONTENT_TYPES
    )


def _looks_like_text(raw: bytes) -> bool:
    sample = raw[:4096]
    if b"\0" in sample:
        return False
    try:
        # final=False: the sample may end inside a multi-byte sequence.
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _decode_body(raw: bytes, response: httpx.Response, truncated: bool) -> str:
    content_type = response.headers.get("content-type", "")
    # Binary payloads are useless (and expensive) as model context; still accept text served
    # with an unhelpful type such as application/octet-stream.
    if not _is_textual(content_type) and not _looks_like_text(raw):
        return f"[binary content ({content_type or 'unknown type'}) omitted]"
    try:
        decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")("replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # final=False on a truncated body avoids a replacement char for a split multi-byte sequence.
    return decoder.decode(raw, final=not truncated)


def _pinned_request(
    client: httpx.Client,
    method: str,
    url: httpx.URL,
    ip: IPAddress,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
) -> httpx.Request:
    # The URL carries the checked IP so httpx/httpcore never resolve the name themselves.
    target = url.copy_with(host=str(ip))
    request_headers = dict(headers)
    request_headers["Host"] = url.netloc.decode("ascii")
    extensions: dict[str, Any] = {}
    if url.scheme == "https" and parse_literal_ip(url.raw_host.decode("ascii")) is None:
        extensions["sni_hostname"] = url.raw_host.decode("ascii").rstrip(".")
    request = client.build_request(
        method,
        target,
        headers=request_headers,
        content=content,
        timeout=httpx.Timeout(timeout),
        extensions=extensions,
    )
    return request


def _read_capped(response: httpx.Response, limit: int, deadline: float) -> tuple[bytes, bool]:
    buf = bytearray()
    # No chunk_size: httpx would buffer until a chunk fills, hiding a dribbling server from us.
    chunks: Iterator[bytes] = response.iter_bytes()
    for chunk in chunks:
        buf.extend(chunk)
        if len(buf) > limit:
            return bytes(buf[:limit]), True
        if time.monotonic() > deadline:
            # A server dribbling bytes would otherwise never trip the per-read timeout.
            raise FetchError("timeout", "Timed out while reading the response body.")
    return bytes(buf), False


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _send_once(
    config: HttpToolConfig,
    method: str,
    url: httpx.URL,
    addresses: list[IPAddress],
    headers: dict[str, str],
    content: bytes | None,
    deadline: float,
) -> tuple[httpx.Response, bytes, bool]:
    last_error: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"Timed out after {config.timeout_seconds} seconds.")
        # A fresh client per hop: no connection reuse across hostnames sharing an IP.
        with httpx.Client(
            trust_env=False,
            follow_redirects=False,
            verify=config.ssl_context if config.ssl_context is not None else True,
            headers={"User-Agent": config.user_agent, "Accept-Encoding": "identity"},
        ) as client:
            request = _pinned_request(client, method, url, ip, headers, content, remaining)
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if _tls_failure(exc):
                    raise FetchError("tls_error", f"TLS handshake failed: {exc}") from exc
                # Try the next validated address, as a browser would with several A records.
                last_error = exc
                continue
            try:
                body, truncated = _read_capped(response, config.max_response_bytes, deadline)
            finally:
                response.close()
            return response, body, truncated
    raise FetchError("connection_error", f"Could not connect to {url.host}: {last_error}")


def fetch(
    config: HttpToolConfig,
    *,
    method: Literal["GET", "POST"],
    url: str,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    content_type: str | None = None,
) -> FetchResult:
    """Send the request, following redirects; a 4xx/5xx answer is a result too.

    Raises :class:`FetchError` for every way the request can fail (a refused URL included).
    """
    deadline = time.monotonic() + config.timeout_seconds
    try:
        return _follow(config, method, url, headers, content, content_type, deadline)
    except BlockedRequestError as exc:
        if exc.code == "blocked":
            logger.warning("http tool refused %s: %s", url, exc.reason)
        raise FetchError(exc.code, exc.reason) from exc
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"Timed out after {config.timeout_seconds} seconds.") from exc
    except httpx.HTTPError as exc:
        raise FetchError("http_error", f"{type(exc).__name__}: {exc}") from exc


def _follow(
    config: HttpToolConfig,
    method: str,
    url: str,
    headers: dict[str, str] | None,
    content: bytes | None,
    content_type: str | None,
    deadline: float,
) -> FetchResult:
    request_headers = _clean_headers(headers)
    if content_type and not any(k.lower() == "content-type" for k in request_headers):
        request_headers["Content-Type"] = content_type
    current: str | httpx.URL = url
    redirects = 0
    while True:
        parsed, addresses = check_url(current, config.policy)
        response, body, truncated = _send_once(
            config, method, parsed, addresses, request_headers, content, deadline
        )
        location = response.headers.get("location")
        if response.status_code not in _REDIRECT_STATUSES or not location:
            return FetchResult(
                status_code=response.status_code,
                url=str(parsed),
                content_type=response.headers.get("content-type"),
                body=_decode_body(body, response, truncated),
                truncated=truncated,
            )
        redirects += 1
        if redirects > config.max_redirects:
            raise FetchError(
                "too_many_redirects",
                f"Stopped after {config.max_redirects} redirects (last: {location}).",
            )
        try:
            next_url = parsed.join(location)
        except (httpx.InvalidURL, ValueError) as exc:
            raise BlockedRequestError(
                f"Invalid redirect Location {location!r}: {exc}", code="invalid_url"
            ) from exc
        # Browser semantics: 303 always, and 301/302 after POST, turn into a body-less GET.
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method = "GET"
            content = None
            request_headers = {
                k: v for k, v in request_headers.items() if k.lower() != "content-type"
            }
        if _origin(next_url) != _origin(parsed):
            request_headers = {
                k: v for k, v in request_headers.items() if k.lower() not in _CREDENTIAL_HEADERS
            }
        current = next_url
