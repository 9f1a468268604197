"""Who is asking: the client IP, the one definition that rate limits and logs use.

``REMOTE_ADDR`` is the peer. Only when the peer is a trusted proxy (``FORWARDED_ALLOW_IPS``:
addresses or networks, ``*`` for any; the same variable uvicorn and gunicorn read) is
``X-Forwarded-For`` followed, from the right, past further trusted proxies, to the first address
that is not one. A malformed entry ends the walk: the last good address is the client, the
header's garbage is ignored. (The ASGI server may already have replaced the peer with the
forwarded client; then the peer is no trusted proxy and the header is not read twice.)
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The bucket of a request whose peer address is unusable (the server took a malformed
# forwarded value as the peer): such requests share one rate-limit count.
UNKNOWN_CLIENT = "0.0.0.0"  # noqa: S104  (a label, not an address to bind)


def _parse_ip(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[::1]:8080"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "1.2.3.4:8080"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8)
def _trusted(spec: tuple[str, ...]) -> tuple[bool, tuple[IPNetwork, ...]]:
    networks: list[IPNetwork] = []
    for item in spec:
        item = item.strip()
        if item == "*":
            return True, ()
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a typo in the setting trusts nothing more
    return False, tuple(networks)


def _is_trusted(address: IPAddress) -> bool:
    anyone, networks = _trusted(tuple(settings.FORWARDED_ALLOW_IPS))
    return anyone or any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str:
    """The client's IP address as text (see the module docstring)."""
    peer = _parse_ip(str(request.META.get("REMOTE_ADDR") or ""))
    if peer is None:
        return UNKNOWN_CLIENT
    client = peer
    if _is_trusted(peer):
        forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
        for entry in reversed([e for e in forwarded.split(",") if e.strip()]):
            hop = _parse_ip(entry)
            if hop is None:
                break
            client = hop
            if not _is_trusted(hop):
                break
    return str(client)
