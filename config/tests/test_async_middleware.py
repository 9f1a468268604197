"""Under ASGI the middleware stack runs in async mode. Every middleware in settings is async
capable (one sync-only middleware makes Django hop threads around it), and each keeps its
behaviour in async mode: correlation ids and the access log, JSON errors under /api/, optional
slashes, sessions saved, CSRF enforced, static files served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string

from accounts.models import User


def _run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Runs the requests as the ASGI server would: on an event loop, the views in threads."""
    return asyncio.run(scenario())


def test_every_middleware_is_sync_and_async_capable() -> None:
    for path in settings.MIDDLEWARE:
        middleware = import_string(path)
        assert getattr(middleware, "async_capable", False), path
        assert getattr(middleware, "sync_capable", True), path


@pytest.mark.django_db
def test_correlation_id_and_access_log_in_async_mode(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        client = AsyncClient()
        with caplog.at_level(logging.INFO, logger="config.access"):
            response = await client.get("/healthz", headers={"X-Request-ID": "async-abc"})
        assert response.status_code == HTTPStatus.OK
        assert response["X-Request-ID"] == "async-abc"
        access = [r for r in caplog.records if r.name == "config.access"]
        assert [(r.method, r.path, r.status) for r in access] == [("GET", "/healthz", 200)]
        assert access[0].correlation_id == "async-abc"
        generated = (await AsyncClient().get("/healthz"))["X-Request-ID"]
        assert len(generated) == 32

    _run(scenario)


@pytest.mark.django_db
def test_api_errors_are_json_and_slashes_optional_in_async_mode() -> None:
    async def scenario() -> None:
        client = AsyncClient()
        missing = await client.get("/api/v1/no-such-thing")
        assert missing.status_code == HTTPStatus.NOT_FOUND
        assert missing.json() == {"detail": "Not Found.", "code": "not_found"}
        assert (await client.get("/healthz/")).status_code == HTTPStatus.OK
        # Not under /api/: Django's own (HTML) 404.
        page = await client.get("/no-such-page")
        assert page.status_code == HTTPStatus.NOT_FOUND
        assert not page["Content-Type"].startswith("application/json")

    _run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_login_saves_the_session_in_async_mode() -> None:
    async def scenario() -> None:
        user = await User.objects.acreate(email="async@example.com", full_name="Async")
        user.set_password("a-long-password-1")
        await user.asave()
        client = AsyncClient()
        assert (await client.get("/chat/")).status_code == HTTPStatus.FOUND  # to the login page
        login = await client.post(
            "/accounts/login/", {"username": "async@example.com", "password": "a-long-password-1"}
        )
        assert login.status_code == HTTPStatus.FOUND
        assert settings.SESSION_COOKIE_NAME in login.cookies
        chat = await client.get("/chat/")
        assert chat.status_code == HTTPStatus.OK
        assert chat["X-Frame-Options"] == "DENY"

    _run(scenario)


@pytest.mark.django_db(transaction=True)
def test_csrf_is_enforced_in_async_mode() -> None:
    async def scenario() -> None:
        client = AsyncClient(enforce_csrf_checks=True)
        refused = await client.post("/accounts/login/", {"username": "x", "password": "y"})
        assert refused.status_code == HTTPStatus.FORBIDDEN
        form = await client.get("/accounts/login/")
        token = form.cookies[settings.CSRF_COOKIE_NAME].value
        accepted = await client.post(
            "/accounts/login/", {"username": "x", "password": "y", "csrfmiddlewaretoken": token}
        )
        assert accepted.status_code == HTTPStatus.OK  # the form again, with its error

    _run(scenario)
