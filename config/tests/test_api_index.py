"""``GET /api/v1/`` (the index) and the docs pages, served without any other host."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_api_root_is_a_json_index_of_its_endpoints(client: Client) -> None:
    for path in ("/api/v1/", "/api/v1"):
        response = client.get(path, follow=False)
        if response.status_code == HTTPStatus.MOVED_PERMANENTLY:  # APPEND_SLASH
            response = client.get(response["Location"])
        assert response.status_code == HTTPStatus.OK, path
        assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["name"] == "Django Agents API"
    assert body["docs"] == "http://testserver/api/docs"
    assert body["redoc"] == "http://testserver/api/redoc"
    assert body["schema"] == "http://testserver/api/schema"
    endpoints = {e["path"]: e for e in body["endpoints"]}
    assert endpoints["/api/v1/agent/run/"]["methods"] == ["POST"]
    assert endpoints["/api/v1/agent/run/"]["description"] == (
        "Send a message to the agent and wait for the answer."
    )
    assert endpoints["/api/v1/agent/threads/{id}/"]["methods"] == ["GET", "PATCH", "DELETE"]
    # One run or thread is described as such, not as the list it belongs to.
    for many, one in (
        ("agent/runs/", "agent/runs/{id}/"),
        ("agent/threads/", "agent/threads/{id}/"),
    ):
        assert endpoints[f"/api/v1/{one}"]["description"].startswith("One of the caller's"), one
        assert (
            endpoints[f"/api/v1/{one}"]["description"]
            != endpoints[f"/api/v1/{many}"]["description"]
        )
    assert "/api/v1/login/access-token" in endpoints
    # Only the API: not the index itself, nor the docs pages.
    assert all(path.startswith("/api/v1/") for path in endpoints), list(endpoints)
    assert "/api/v1/" not in endpoints
    # Every path listed answers (no 404) for an anonymous client: it exists.
    for path in endpoints:
        concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        method = endpoints[path]["methods"][0].lower()
        answer = getattr(client, method)(concrete)
        assert answer.status_code != HTTPStatus.NOT_FOUND or "{id}" in path, path


def test_the_index_ignores_a_bad_token(client: Client) -> None:
    response = client.get("/api/v1/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize("path", ["/api/docs", "/api/redoc"])
def test_the_docs_pages_load_only_our_own_files(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    for url in urls:
        assert url.startswith("/static/drf_spectacular_sidecar/") or url.startswith("/api/"), url
    assert "https://" not in html
    assert "http://" not in html
    for url in urls:
        if url.startswith("/static/"):
            asset = client.get(url)
            assert asset.status_code == HTTPStatus.OK, url


def test_the_docs_pages_forbid_other_hosts(client: Client) -> None:
    for path in ("/api/docs", "/api/redoc"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "img-src 'self' data:" in policy
