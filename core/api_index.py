"""``GET /api/v1/``: an index of the API, built from its OpenAPI schema so it never goes stale."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_METHODS = ("get", "post", "put", "patch", "delete")
_DESCRIPTION_CHARS = 200


def _first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    cut = text.find(". ")
    text = text if cut < 0 else text[: cut + 1]
    return text if len(text) <= _DESCRIPTION_CHARS else text[: _DESCRIPTION_CHARS - 1] + "…"


@functools.cache
def api_endpoints() -> list[dict[str, Any]]:
    """Every path of the public schema, its methods and what it is for, in schema order."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    endpoints = []
    for path, operations in schema["paths"].items():
        methods = [method for method in operations if method in _METHODS]
        first = operations[methods[0]] if methods else {}
        endpoints.append(
            {
                "path": path,
                "methods": [method.upper() for method in methods],
                "description": _first_sentence(first.get("summary") or first.get("description")),
            }
        )
    return endpoints


class ApiIndexView(APIView):
    """Where everything is: the endpoints, the docs and the schema. Public, like the docs."""

    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        return Response(
            {
                "name": settings.SPECTACULAR_SETTINGS["TITLE"],
                "version": settings.SPECTACULAR_SETTINGS["VERSION"],
                "docs": url("swagger-ui"),
                "redoc": url("redoc"),
                "schema": url("schema"),
                "endpoints": api_endpoints(),
            }
        )
