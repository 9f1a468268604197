"""/api/schema tells the truth about errors: every operation lists the error statuses it can
answer, each with the shared Error body."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema")
    assert response.status_code == HTTPStatus.OK
    return yaml.safe_load(response.content)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def error_schema(op: dict[str, Any], status: str) -> Any:
    content = op["responses"][status].get("content", {})
    return content.get("application/json", {}).get("schema", {})


def test_the_error_component_is_the_handlers_body(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"detail", "code", "errors"}
    assert set(error["required"]) == {"detail", "code"}


def test_every_error_status_has_a_json_error_body(schema):
    missing = []
    for method, path, op in operations(schema):
        for status in op["responses"]:
            if status.startswith(("4", "5")) and not error_schema(op, status).get("$ref"):
                missing.append((method, path, status))
    assert not missing


EXPECTED = [
    ("POST", "/api/v1/agent/run/", {"400", "401", "404", "413", "415", "422", "429", "502", "504"}),
    ("POST", "/api/v1/agent/run/stream/", {"400", "401", "413", "429"}),
    ("GET", "/api/v1/agent/runs/", {"400", "401"}),
    ("GET", "/api/v1/agent/runs/{id}/", {"401", "404"}),
    ("DELETE", "/api/v1/agent/threads/{id}/", {"401", "404"}),
    ("POST", "/api/v1/login/access-token", {"400", "413", "429"}),
    ("POST", "/api/v1/auth/token/", {"400", "401", "429"}),
    ("POST", "/api/v1/auth/token/refresh/", {"400", "401"}),
    ("POST", "/api/v1/auth/logout", {"400", "413"}),
    ("GET", "/api/v1/users/", {"401", "403"}),
    ("DELETE", "/api/v1/users/{id}/", {"400", "401", "403", "404"}),
    ("POST", "/api/v1/users/signup", {"400", "403"}),
]


@pytest.mark.parametrize(("method", "path", "statuses"), EXPECTED)
def test_endpoints_list_the_errors_they_answer(schema, method, path, statuses):
    op = schema["paths"][path][method.lower()]
    assert statuses <= set(op["responses"]), sorted(op["responses"])
