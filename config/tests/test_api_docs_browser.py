"""The API docs in a real Chromium with no internet: every request to another host is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from testing.browser import needs_chromium
from testing.live import database_env, run_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture(scope="module")
def server_url(django_db_setup: None) -> Iterator[str]:
    with run_server(database_env()) as url:
        yield url


@pytest.fixture
def offline_page(browser: Any, server_url: str) -> Iterator[tuple[Any, list[str]]]:
    """A page that reaches the app only; what it tried to load elsewhere is in the list."""
    app = urlsplit(server_url).netloc
    elsewhere: list[str] = []
    context = browser.new_context(base_url=server_url)

    def only_the_app(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https") and parts.netloc != app:
            elsewhere.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", only_the_app)
    yield context.new_page(), elsewhere
    context.close()


def test_swagger_ui_renders_offline(offline_page: tuple[Any, list[str]]) -> None:
    page, elsewhere = offline_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/api/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "Django Agents API" in (page.locator(".swagger-ui .info .title").text_content() or "")
    # The operations are listed, the run endpoint among them.
    page.wait_for_selector(".opblock-summary-path", timeout=20000)
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert any(p.replace("\u200b", "").startswith("/api/v1/agent/run") for p in paths), paths
    assert elsewhere == []
    assert errors == []


def test_redoc_renders_offline(offline_page: tuple[Any, list[str]]) -> None:
    page, elsewhere = offline_page
    page.goto("/api/redoc")
    page.wait_for_selector("h1", timeout=30000)
    page.wait_for_function(
        "() => document.body.innerText.includes('Django Agents API')", timeout=30000
    )
    page.wait_for_function("() => document.body.innerText.includes('/agent/run')", timeout=30000)
    assert elsewhere == []
