"""The URL and address policy of the HTTP tools: which URLs may be fetched, and at which addresses.

The model decides which URLs to fetch, so every URL is hostile input:

* Only ``http``/``https`` URLs without userinfo are accepted.
* The host is resolved once (literal IPs, including shorthand forms such as ``2130706433`` or
  ``0x7f.1``, are normalised the way ``inet_aton`` would) and the URL is refused if *any*
  resolved address is non-public, unless it lies in ``UrlPolicy.allowed_networks``
  (``HTTP_TOOL_ALLOWED_NETWORKS``). Cloud metadata endpoints are refused by name and address
  even when exempted.
* ``UrlPolicy.allowed_hosts`` (``HTTP_TOOL_ALLOWED_HOSTS``), when set, lists the only hosts allowed.

:func:`check_url` returns the addresses that passed; ``agents.graph.fetch`` connects to exactly
those (IP pinning), so a second DNS answer can never point the request elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

__all__ = [
    "BlockedRequestError",
    "IPAddress",
    "Resolver",
    "UrlPolicy",
    "check_url",
    "parse_literal_ip",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class BlockedRequestError(Exception):
    """The URL may not be fetched. ``reason`` is safe to show to the model."""

    def __init__(self, reason: str, code: str = "blocked") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class UrlPolicy:
    allowed_hosts: tuple[str, ...] = ()
    """If non-empty, only these hostnames (case-insensitive); ``*.example.com`` matches any
    subdomain of example.com but not example.com itself."""
    allowed_networks: tuple[str, ...] = ()
    """CIDRs exempted from the non-public address block (intranet services, tests)."""
    resolver: Resolver | None = None
    """``(host, port) -> [ip, ...]``; defaults to ``socket.getaddrinfo``."""
    networks: tuple[Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Malformed CIDRs fail here, when the tools are built, not on the model's first call.
        parsed = tuple(ipaddress.ip_network(c, strict=False) for c in self.allowed_networks)
        object.__setattr__(self, "networks", parsed)


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


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # sockaddr[0] of IPv6 entries may carry a "%scope" suffix; ipaddress understands it.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_literal_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one (in any spelling ``inet_aton`` accepts), else None."""
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


def _address_block_reason(ip: IPAddress, allowed: tuple[Network, ...]) -> str | None:
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


def check_url(url: str | httpx.URL, policy: UrlPolicy) -> tuple[httpx.URL, list[IPAddress]]:
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
    if not _host_allowed(name, policy.allowed_hosts):
        raise BlockedRequestError(f"Host {name!r} is not in the list of allowed hosts.")

    literal = parse_literal_ip(host)
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        resolver = policy.resolver or _default_resolver
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

    addresses: list[IPAddress] = []
    # Every answer must pass: the OS or a retry could otherwise pick the private one.
    for ip in candidates:
        normalised = _normalise_address(ip)
        reason = _address_block_reason(normalised, policy.networks)
        if reason:
            shown = str(ip) if ip == normalised else f"{ip} ({normalised})"
            via = "" if literal is not None else f" resolves to {shown}, which"
            subject = f"Host {name!r}{via}" if via else f"Address {shown}"
            raise BlockedRequestError(f"{subject} is {reason}; requests there are not allowed.")
        if normalised not in addresses:
            addresses.append(normalised)
    return parsed, addresses
