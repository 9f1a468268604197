"""The OpenAPI schema (drf-spectacular) and its pages."""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerView


class SwaggerView(SpectacularSwaggerView):
    """The Swagger UI page. OPTIONS is a 405: DRF's metadata answer would be rendered by the
    page's HTML template, which has none for it (a 500)."""

    metadata_class = None
