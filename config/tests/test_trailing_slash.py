"""Every route of the URLconf answers the same with and without its trailing slash, for GET
and for POST (no redirect that would drop a POST body)."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

SAMPLE_ID = str(uuid.uuid4())
_CONVERTER = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")
_GROUP = re.compile(r"\(\?P<\w+>(?:[^()]|\([^()]*\))*\)")


def _sample(pattern: str) -> str:
    """A concrete path for a route or regex pattern, without its trailing slash."""
    pattern = _CONVERTER.sub(lambda m: "1" if m["conv"] == "int" else SAMPLE_ID, pattern)
    pattern = _GROUP.sub(SAMPLE_ID, pattern)
    pattern = pattern.lstrip("^").rstrip("$").replace("/?", "").replace("\\", "")
    return pattern.rstrip("/")


def _paths(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    resolver = resolver or get_resolver()
    paths: list[str] = []
    for entry in resolver.url_patterns:
        here = prefix + _sample(str(entry.pattern)) + ("/" if prefix or str(entry.pattern) else "")
        if isinstance(entry, URLResolver):
            paths.extend(_paths(entry, here if str(entry.pattern) else prefix))
        elif isinstance(entry, URLPattern):
            if "(?P<url>.*)" in str(entry.pattern):  # the admin's catch-all
                continue
            paths.append("/" + (prefix + _sample(str(entry.pattern))).strip("/"))
    return sorted({p for p in paths if p != "/"})


ROUTES = _paths()


def test_the_urlconf_walk_finds_the_routes():
    for expected in (
        "/healthz",
        "/api/v1/auth/token",
        "/api/v1/login/access-token",
        "/api/v1/agent/run",
        "/accounts/login",
        "/admin/login",
    ):
        assert expected in ROUTES
    assert len(ROUTES) > 40


@pytest.fixture
def logged_in(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_route_answers_the_same_with_and_without_the_slash(logged_in, superuser, method):
    mismatched = []
    for path in ROUTES:
        statuses = []
        for variant in (path, f"{path}/"):
            logged_in.force_login(superuser)  # a route may have logged the client out
            response = getattr(logged_in, method)(variant, {})
            statuses.append(response.status_code)
            location = response.get("Location", "")
            if response.status_code in (301, 308) or location.rstrip("/") == path:
                mismatched.append((variant, response.status_code, location))
        if statuses[0] != statuses[1]:
            mismatched.append((path, *statuses))
    assert not mismatched


def test_a_post_without_the_slash_keeps_its_body(user, api_client):
    user.set_password("a-good-password-1")
    user.save()
    for path in ("/api/v1/auth/token", "/api/v1/auth/token/"):
        response = api_client.post(
            path, {"email": user.email, "password": "a-good-password-1"}, format="json"
        )
        assert response.status_code == HTTPStatus.OK, path
        assert "access" in response.json()
    for path in ("/api/v1/login/access-token", "/api/v1/login/access-token/"):
        response = api_client.post(path, {"username": user.email, "password": "a-good-password-1"})
        assert response.status_code == HTTPStatus.OK, path
        assert "access_token" in response.json()


def test_unknown_paths_stay_404(client):
    assert client.get("/api/v1/nope").status_code == HTTPStatus.NOT_FOUND
    assert client.post("/api/v1/nope/").status_code == HTTPStatus.NOT_FOUND


def test_head_answers_wherever_get_does(logged_in, superuser):
    mismatched = []
    for path in ROUTES:
        logged_in.force_login(superuser)
        get = logged_in.get(path)
        logged_in.force_login(superuser)
        head = logged_in.head(path)
        if get.status_code == HTTPStatus.OK and head.status_code != get.status_code:
            mismatched.append((path, get.status_code, head.status_code))
        if head.status_code == HTTPStatus.OK:
            assert head.content == b"", path
    assert not mismatched
