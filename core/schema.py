"""The OpenAPI schema (drf-spectacular): every endpoint documents the errors it can answer.

``AutoSchema`` (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``) adds to each operation the error
statuses that follow from how the view is built, each with the body every error has
(``core.exception_handler``: the ``Error`` component, ``{detail, code, errors?}``):

- 400 for a body (malformed JSON, validation) or for query parameters (filters, cursor, limit);
- 401 where a credential is read (a view with authentication classes, simplejwt's token views);
- 403 for permissions beyond "logged in", and for unsafe methods under session auth (CSRF);
- 404 for a path with an id; 413 for a body over ``REQUEST_BODY_MAX_BYTES``, 415 for a body of
  a media type no parser reads;
- 429 and 503 (rate limit, its cache down while failing closed) for a rate-limited view.

What only the endpoint knows (422, 502, 504 of a run, a 409) it declares itself with
``@extend_schema(responses=...)``; a status declared there without a body (``None``) gets the
``Error`` body.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Permissions that refuse nothing a logged-in (or anonymous) caller may do.
_PLAIN_PERMISSIONS = (permissions.AllowAny, permissions.IsAuthenticated)


class ErrorSerializer(serializers.Serializer):
    """Every error the API answers (``core.exception_handler``)."""

    detail = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="What went wrong, for programs: stable, snake_case.")
    # Named like the body's key; only the schema reads it (Serializer.errors is shadowed).
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False,
        help_text="Validation errors (code `invalid`): a list of messages per field.",
    )

    class Meta:
        ref_name = "Error"


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in self._error_statuses():
            code = str(status)
            if code not in responses or not responses[code].get("content"):
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        # A status declared as None (no body) on a view: it is an error, give it the body.
        for code, response in responses.items():
            if code.startswith(("4", "5")) and not response.get("content"):
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        return dict(sorted(responses.items()))

    def _error_statuses(self) -> set[int]:
        view = self.view
        method = self.method.upper()
        statuses: set[int] = set()
        has_body = method in ("POST", "PUT", "PATCH")
        if has_body:
            statuses |= {400, 413, 415}
        if self._is_list_view() or self._get_filter_parameters() or self._query_serializer():
            statuses.add(400)
        authenticators = list(getattr(view, "authentication_classes", ()) or ())
        if authenticators or _is_token_view(view):
            statuses.add(401)
        if any(
            not isinstance(permission, _PLAIN_PERMISSIONS) for permission in view.get_permissions()
        ):
            statuses.add(403)
        if method in UNSAFE_METHODS and any(
            issubclass(auth, SessionAuthentication) for auth in authenticators
        ):
            statuses.add(403)  # CSRF
        if self.path_regex and "{" in self.path:
            statuses.add(404)
        if getattr(view, "throttle_classes", ()):
            statuses |= {429, 503}
        return statuses

    def _query_serializer(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())

    def _get_parameters(self) -> list[dict[str, Any]]:
        try:
            return list(super()._get_parameters())
        except Exception:
            return []


def _is_token_view(view: Any) -> bool:
    from rest_framework_simplejwt.views import TokenViewBase

    return isinstance(view, TokenViewBase)
