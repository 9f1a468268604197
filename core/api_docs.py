"""The API docs pages (Swagger UI, ReDoc), served from our own static files and held to them.

drf-spectacular-sidecar provides the assets; the Content-Security-Policy keeps each page from
loading anything from another host (ReDoc's bundle, for one, fetches its logo from a CDN), so
the docs look the same with or without internet.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response

SAME_ORIGIN_ONLY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        # Swagger UI's start-up script is inline; both UIs inject inline styles; ReDoc runs a
        # web worker from a blob.
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    )
)


class SwaggerView(SpectacularSwaggerView):
    # OPTIONS is a 405: DRF's metadata answer would be rendered by the page's HTML template,
    # which has none for it (a 500).
    metadata_class = None

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response


class RedocView(SpectacularRedocView):
    template_name = "api/redoc.html"
    metadata_class = None  # as for Swagger UI

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return response
