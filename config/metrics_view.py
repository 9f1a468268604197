"""``GET /metrics``: every Prometheus metric of this process, or of all the server's processes.

In multi-process mode (``PROMETHEUS_MULTIPROC_DIR``) each scrape reads the values every worker
wrote to that directory and adds them up; otherwise it serves the default registry, where
django-prometheus, ``agents.metrics`` and ``config.metrics`` register.

Protection (``config.settings.metrics``): ``METRICS_ALLOWED_NETWORKS`` answers 403 to other
client addresses, ``METRICS_BEARER_TOKEN`` 401 without ``Authorization: Bearer <token>``;
``METRICS_ENABLED`` off answers 404. The client address is ``core.http.client_ip``'s:
``X-Forwarded-For`` counts only from ``FORWARDED_ALLOW_IPS``. GET and HEAD.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

import agents.metrics  # registers the agent metrics
import config.metrics  # noqa: F401  (registers the rate-limit metrics)
from core.http import client_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _client_allowed(request: HttpRequest) -> bool:
    allowed = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


def _token_ok(request: HttpRequest) -> bool:
    expected = settings.METRICS_BEARER_TOKEN
    if not expected:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )


def _refuse(status: HTTPStatus, detail: str, code: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code}, status=status)
    if status == HTTPStatus.UNAUTHORIZED:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


_RUNS_BY_STATUS = agents.metrics.RunsByStatusCollector()


def registry() -> CollectorRegistry:
    """What a scrape reads: all processes' values in multi-process mode, else this process's;
    and the runs pending and running now, from the database."""
    collected = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(collected, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        collected.register(_Everything(REGISTRY))
    collected.register(_RUNS_BY_STATUS)
    return collected


class _Everything:
    """A registry's metrics, as one collector of another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Any:
        return self.source.collect()


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        return _refuse(HTTPStatus.NOT_FOUND, "Not found.", "not_found")
    if not _client_allowed(request):
        return _refuse(HTTPStatus.FORBIDDEN, "Metrics are not served to this address.", "forbidden")
    if not _token_ok(request):
        return _refuse(
            HTTPStatus.UNAUTHORIZED,
            "A valid metrics bearer token is required.",
            "not_authenticated",
        )
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry()), content_type=content_type)
