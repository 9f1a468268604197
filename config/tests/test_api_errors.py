"""Every error under /api/ is JSON with detail and code, whatever went wrong."""

from http import HTTPStatus

import pytest

pytestmark = pytest.mark.django_db


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["detail"]
    assert body["code"]
    return body


def test_malformed_json_is_400(user_client):
    response = user_client.generic(
        "POST", "/api/v1/items/", "{not json", content_type="application/json"
    )
    assert assert_json_error(response, HTTPStatus.BAD_REQUEST)["code"] == "parse_error"


def test_wrong_types_and_missing_fields_are_per_field(user_client):
    response = user_client.post(
        "/api/v1/items/", {"title": {"nested": 1}, "description": ["x"]}, format="json"
    )
    body = assert_json_error(response, HTTPStatus.BAD_REQUEST)
    assert set(body["errors"]) == {"title", "description"}
    response = user_client.post("/api/v1/items/", [1, 2], format="json")
    assert_json_error(response, HTTPStatus.BAD_REQUEST)


def test_unknown_api_path_is_json_404(client):
    body = assert_json_error(client.get("/api/v1/does-not-exist"), HTTPStatus.NOT_FOUND)
    assert body["code"] == "not_found"


def test_wrong_method_is_json_405(user_client):
    response = user_client.delete("/api/v1/items/")
    assert assert_json_error(response, HTTPStatus.METHOD_NOT_ALLOWED)["code"] == (
        "method_not_allowed"
    )


def test_oversized_body_is_json_not_html(user_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = user_client.post(
        "/api/v1/items/", {"title": "x", "description": "y" * 5000}, format="json"
    )
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")


def test_unsupported_media_type(user_client):
    response = user_client.generic("POST", "/api/v1/items/", "<a/>", content_type="text/xml")
    assert assert_json_error(response, HTTPStatus.UNSUPPORTED_MEDIA_TYPE)["code"] == (
        "unsupported_media_type"
    )


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == HTTPStatus.OK
    paths = schema.json()["paths"]
    assert "/api/v1/login/access-token" in paths
    assert "/api/v1/items/" in paths or "/api/v1/items" in paths
    docs = client.get("/api/docs")
    assert docs.status_code == HTTPStatus.OK
    assert b"swagger" in docs.content.lower()
