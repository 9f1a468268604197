"""SSRF-protected HTTP tools for the agent graph.

The model decides which URLs to fetch, so every request is treated as hostile input:

* Only ``http``/``https`` URLs without userinfo are accepted.
* The host is resolved once (literal IPs, including shorthand forms such as ``2130706433`` or
  ``0x7f.1``, are normalised the way ``inet_aton`` would) and the request is refused if *any*
  resolved address is non-public, unless it lies in ``HttpToolConfig.allowed_networks``.
  Cloud metadata endpoints are refused by name and address even when exempted.
* **IP pinning.** The connection is made to the validated IP itself: the request URL's host is
  replaced by that IP, the ``Host`` header carries the original authority and, for HTTPS,
  httpcore's ``sni_hostname`` request extension makes TLS send SNI for, and verify the
  certificate against, the original hostname. No second DNS lookup happens, so a DNS-rebinding
  answer between "check" and "connect" cannot redirect us to an internal address.
  Each hop uses a fresh client, so a pooled TLS connection verified for one hostname is never
  reused for another hostname that happens to share the IP.
* Redirects are followed by hand, each ``Location`` going through the same checks.
* Proxy settings from the environment are ignored (``trust_env=False``): a proxy would do its own
  DNS resolution and defeat the pinning.

Django is intentionally not imported; callers build an :class:`HttpToolConfig` from settings.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

__all__ = [
    "BlockedRequestError",
    "HttpToolConfig",
    "check_url",
    "create_http_tools",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class HttpToolConfig:
    timeout_seconds: float = 10.0
    """Budget for the whole tool call (connect, every redirect hop and reading the body)."""
    max_response_bytes: int = 100_000
    """Body bytes kept (after content decoding); the rest is never read."""
    max_redirects: int = 5
    allowed_hosts: tuple[str, ...] = ()
    """If non-empty, only these hostnames (case-insensitive); ``*.example.com`` matches any
    subdomain of example.com but not example.com itself."""
    allowed_networks: tuple[str, ...] = ()
    """CIDRs exempted from the non-public address block (intranet services, tests)."""
    user_agent: str = "django-agent-http-tool/1.0"
    resolver: Resolver | None = None
    """``(host, port) -> [ip, ...]``; defaults to ``socket.getaddrinfo``."""
    ssl_context: ssl.SSLContext | None = None
    """Custom trust store (e.g. an intranet CA). ``None`` means httpx's default verification.
    There is deliberately no way to switch verification off."""


class BlockedRequestError(Exception):
    """The URL may not be fetched. ``reason`` is safe to show to the model."""

    def __init__(self, reason: str, code: str = "blocked") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# Refused by name because some resolvers map them to addresses that are not obviously special.
_METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

# Refused even if an operator's allowed_networks happens to cover them: credentials live here.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

# Spelled out even though most are covered by ``is_global``; documents intent and guards against
# stdlib classification changes between Python versions.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)

_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

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


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # sockaddr[0] of IPv6 entries may carry a "%scope" suffix; ipaddress understands it.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton accepts the legacy forms ("2130706433", "0x7f.1", "127.1") that getaddrinfo and
    # many HTTP stacks also accept; catching them here keeps the check independent of resolver.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _normalise_address(ip: IPAddress) -> IPAddress:
    # An IPv4-mapped IPv6 address reaches the IPv4 host, so judge (and connect to) that host.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    embedded: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if ip in _NAT64_PREFIX:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def _non_public_reason(ip: IPAddress) -> str | None:
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    for net in _BLOCKED_NETWORKS:
        if ip.version == net.version and ip in net:
            return f"in the non-public range {net}"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved and ip not in _NAT64_PREFIX:
        return "a reserved address"
    if not ip.is_global and ip not in _NAT64_PREFIX:
        return "not a globally routable address"
    return None


def _address_block_reason(
    ip: IPAddress, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> str | None:
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    reason = _non_public_reason(ip)
    if reason:
        return reason
    for inner in _embedded_ipv4(ip):
        inner_reason = _address_block_reason(inner, allowed)
        if inner_reason:
            return f"embeds {inner} which is {inner_reason}"
    return None


def _parse_networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _normalise_hostname(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _idna(host: str) -> str:
    try:
        return httpx.URL(f"http://{host}/").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        return host


def _host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    if not allowed_hosts:
        return True
    host = _normalise_hostname(host)
    for entry in allowed_hosts:
        entry = _normalise_hostname(entry)
        if entry.startswith("*."):
            suffix = "." + _idna(entry[2:])
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == _idna(entry):
            return True
    return False


def check_url(url: str | httpx.URL, config: HttpToolConfig) -> tuple[httpx.URL, list[IPAddress]]:
    """Validate ``url`` and resolve its host.

    Returns the parsed URL and the addresses to connect to (all of which passed the checks).
    Raises :class:`BlockedRequestError` with ``code`` ``"invalid_url"``, ``"blocked"`` or
    ``"dns_error"``.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BlockedRequestError(f"Invalid URL: {exc}", code="invalid_url") from exc

    if parsed.scheme not in ("http", "https"):
        raise BlockedRequestError(
            f"Only http and https URLs are allowed, not {parsed.scheme or 'a relative URL'!r}.",
            code="invalid_url",
        )
    if parsed.userinfo:
        raise BlockedRequestError(
            "URLs with embedded credentials (user:password@host) are not allowed; "
            "pass an Authorization header instead.",
            code="invalid_url",
        )
    # raw_host is the IDNA/ASCII form actually sent to DNS; host is the display form.
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise BlockedRequestError("The URL has no host.", code="invalid_url")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise BlockedRequestError(f"Invalid port {port}.", code="invalid_url")

    name = _normalise_hostname(host)
    if name in _METADATA_HOSTNAMES:
        raise BlockedRequestError(f"Host {name!r} is a cloud metadata service.")
    if not _host_allowed(name, config.allowed_hosts):
        raise BlockedRequestError(f"Host {name!r} is not in the list of allowed hosts.")

    literal = _parse_literal_ip(host)
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        resolver = config.resolver or _default_resolver
        try:
            answers = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise BlockedRequestError(
                f"Could not resolve host {name!r}: {exc}", code="dns_error"
            ) from exc
        try:
            candidates = [ipaddress.ip_address(a) for a in answers]
        except ValueError as exc:
            raise BlockedRequestError(
                f"Resolver returned an invalid address for {name!r}: {exc}", code="dns_error"
            ) from exc
        if not candidates:
            raise BlockedRequestError(f"Host {name!r} did not resolve.", code="dns_error")

    allowed = _parse_networks(config.allowed_networks)
    addresses: list[IPAddress] = []
    # Every answer must pass: the OS or a retry could otherwise pick the private one.
    for ip in candidates:
        normalised = _normalise_address(ip)
        reason = _address_block_reason(normalised, allowed)
        if reason:
            shown = str(ip) if ip == normalised else f"{ip} ({normalised})"
            via = "" if literal is not None else f" resolves to {shown}, which"
            subject = f"Host {name!r}{via}" if via else f"Address {shown}"
            raise BlockedRequestError(f"{subject} is {reason}; requests there are not allowed.")
        if normalised not in addresses:
            addresses.append(normalised)
    return parsed, addresses


# --------------------------------------------------------------------------------------------
# Request execution


class _ToolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error_json(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"error": message, "code": code, **extra})


def _clean_headers(headers: dict[str, str] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for key, value in (headers or {}).items():
        lower = key.strip().lower()
        if lower in _STRIPPED_REQUEST_HEADERS or lower.startswith("proxy-"):
            continue
        # h11 would reject these too, but a clear message helps the model fix its call.
        if any(c in key + value for c in "\r\n\0"):
            raise _ToolError("invalid_request", f"Header {key!r} contains a control character.")
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
    if url.scheme == "https" and _parse_literal_ip(url.raw_host.decode("ascii")) is None:
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
            raise _ToolError("timeout", "Timed out while reading the response body.")
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
            raise _ToolError("timeout", f"Timed out after {config.timeout_seconds} seconds.")
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
                    raise _ToolError("tls_error", f"TLS handshake failed: {exc}") from exc
                # Try the next validated address, as a browser would with several A records.
                last_error = exc
                continue
            try:
                body, truncated = _read_capped(response, config.max_response_bytes, deadline)
            finally:
                response.close()
            return response, body, truncated
    raise _ToolError("connection_error", f"Could not connect to {url.host}: {last_error}")


def _fetch(
    config: HttpToolConfig,
    method: Literal["GET", "POST"],
    url: str,
    headers: dict[str, str] | None,
    content: bytes | None,
    content_type: str | None,
) -> str:
    deadline = time.monotonic() + config.timeout_seconds
    try:
        request_headers = _clean_headers(headers)
        if content_type and not any(k.lower() == "content-type" for k in request_headers):
            request_headers["Content-Type"] = content_type
        current: str | httpx.URL = url
        current_method: str = method
        redirects = 0
        while True:
            parsed, addresses = check_url(current, config)
            response, body, truncated = _send_once(
                config, current_method, parsed, addresses, request_headers, content, deadline
            )
            location = response.headers.get("location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return json.dumps(
                    {
                        "status_code": response.status_code,
                        "url": str(parsed),
                        "content_type": response.headers.get("content-type"),
                        "body": _decode_body(body, response, truncated),
                        "truncated": truncated,
                    }
                )
            redirects += 1
            if redirects > config.max_redirects:
                raise _ToolError(
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
            if response.status_code == 303 or (
                response.status_code in (301, 302) and current_method == "POST"
            ):
                current_method = "GET"
                content = None
                request_headers = {
                    k: v for k, v in request_headers.items() if k.lower() != "content-type"
                }
            if _origin(next_url) != _origin(parsed):
                request_headers = {
                    k: v for k, v in request_headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                }
            current = next_url
    except BlockedRequestError as exc:
        if exc.code == "blocked":
            logger.warning("http tool refused %s: %s", url, exc.reason)
        return _error_json(exc.code, exc.reason)
    except _ToolError as exc:
        return _error_json(exc.code, exc.message)
    except httpx.TimeoutException:
        return _error_json("timeout", f"Timed out after {config.timeout_seconds} seconds.")
    except httpx.HTTPError as exc:
        return _error_json("http_error", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # the tool contract is "never raise"; keep the graph alive
        logger.exception("http tool failed unexpectedly for %s", url)
        return _error_json("internal_error", f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# Tools


class HttpGetArgs(BaseModel):
    url: str = Field(
        description="Absolute http:// or https:// URL to fetch.", min_length=1, max_length=8192
    )
    headers: dict[str, str] | None = Field(
        default=None,
        description="Optional extra request headers, e.g. {'Accept': 'application/json'}.",
    )


class HttpPostArgs(BaseModel):
    url: str = Field(
        description="Absolute http:// or https:// URL to post to.", min_length=1, max_length=8192
    )
    json_body: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="JSON object or array to send as the request body "
        "(sent with Content-Type: application/json). Use this OR `data`, not both.",
    )
    data: str | None = Field(
        default=None,
        description="Raw string body (sent as text/plain unless you set a Content-Type header, "
        "e.g. application/x-www-form-urlencoded). Use this OR `json_body`, not both.",
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Optional extra request headers."
    )


_LIMITS_TEXT = (
    "Only public internet addresses can be reached: localhost, private/intranet networks and "
    "cloud metadata services are refused{hosts}. Redirects are followed (at most {redirects}); "
    "the whole call times out after {timeout:g} seconds and the body is cut off after "
    '{cap} bytes (then "truncated" is true). Binary bodies are omitted. '
    "Host, Content-Length, Connection, Proxy-* and User-Agent headers you pass are ignored; "
    "Authorization and Cookie headers are dropped if a redirect leaves the original site.\n"
    'Returns a JSON string. On success: {{"status_code", "url" (final URL after redirects), '
    '"content_type", "body", "truncated"}} - a 4xx/5xx status is still a success result, '
    'read the body for details. On failure: {{"error": message, "code": one of blocked, '
    "invalid_url, dns_error, timeout, connection_error, tls_error, too_many_redirects, "
    'invalid_request, http_error}}. Do not retry a "blocked" URL or variations of it.'
)


def _limits(config: HttpToolConfig) -> str:
    hosts = (
        "; only these hosts are permitted: " + ", ".join(config.allowed_hosts)
        if config.allowed_hosts
        else ""
    )
    return _LIMITS_TEXT.format(
        hosts=hosts,
        redirects=config.max_redirects,
        timeout=config.timeout_seconds,
        cap=config.max_response_bytes,
    )


def create_http_tools(config: HttpToolConfig) -> list[BaseTool]:
    """Build ``[http_get, http_post]`` bound to ``config``.

    The tools never raise for request problems; they return a JSON error object instead.
    Arguments that do not match the schema (e.g. a missing ``url``) raise
    ``pydantic.ValidationError`` from ``invoke``; LangGraph's ``ToolNode`` turns that into an
    error ``ToolMessage`` for the model, so we do not swallow it here.
    """
    # Fail at construction, not on the first model call, if the CIDRs are malformed.
    _parse_networks(config.allowed_networks)

    def http_get(url: str, headers: dict[str, str] | None = None) -> str:
        return _fetch(config, "GET", url, headers, None, None)

    def http_post(
        url: str,
        json_body: dict[str, Any] | list[Any] | None = None,
        data: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        if json_body is not None and data is not None:
            return _error_json("invalid_request", "Pass either json_body or data, not both.")
        if json_body is not None:
            return _fetch(
                config,
                "POST",
                url,
                headers,
                json.dumps(json_body).encode(),
                "application/json",
            )
        if data is not None:
            return _fetch(config, "POST", url, headers, data.encode(), "text/plain; charset=utf-8")
        return _fetch(config, "POST", url, headers, b"", None)

    limits = _limits(config)
    get_tool = StructuredTool.from_function(
        func=http_get,
        name="http_get",
        description=(
            "Fetch a web page or HTTP API with a GET request and return the response body as "
            "text. Use it to read documentation, public APIs or pages the user refers to.\n"
            + limits
        ),
        args_schema=HttpGetArgs,
    )
    post_tool = StructuredTool.from_function(
        func=http_post,
        name="http_post",
        description=(
            "Send an HTTP POST request, e.g. to call a public JSON API. Put a JSON payload in "
            "`json_body` (object or array) or a raw string in `data` (set a Content-Type "
            "header for forms), never both. Only use it when the user's task requires "
            "submitting data; prefer http_get for reading.\n" + limits
        ),
        args_schema=HttpPostArgs,
    )
    return [get_tool, post_tool]
