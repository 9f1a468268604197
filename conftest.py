"""Fixtures shared by every app's tests: users, API clients, the model the agent talks to, and
the Langfuse receiver.

``offline``: the deterministic local model (no network). ``llm_server``: a real
OpenAI-compatible HTTP server (``testing.llm_server.FakeLLMServer``) that the agent reaches
through ``ChatOpenAI``, exactly as it would reach OpenAI; script its answers with ``Reply`` and
read what the agent sent in ``server.requests``. ``receiver``: a local stand-in for Langfuse that
records what the real SDK exports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.tests.factories import UserFactory
from testing.browser import chromium
from testing.langfuse_receiver import LangfuseReceiver
from testing.llm_server import FakeLLMServer


@pytest.fixture(scope="session", autouse=True)
def _checkpointer_closed_before_db_teardown(django_db_setup: None) -> Iterator[None]:
    """The PostgreSQL checkpointer keeps a pool open on the test database; close it before
    pytest-django drops that database (else: "database ... is being accessed by other users")."""
    yield
    from agents.checkpointer import close_checkpointer

    close_checkpointer()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db: None) -> User:
    return UserFactory()


@pytest.fixture
def superuser(db: None) -> User:
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    """An API client that sends a bearer token for the given user."""

    def make(user: User) -> APIClient:
        client = APIClient()
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def user_client(user: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(user)


@pytest.fixture
def admin_client_api(superuser: User, client_for: Callable[[User], APIClient]) -> APIClient:
    return client_for(superuser)


@pytest.fixture
def staff_client(client: Client, superuser: User) -> Client:
    """Django's test client with a superuser's session: for the admin pages."""
    client.force_login(superuser)
    return client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (``testing.browser``) for one test module."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def offline(settings: SettingsWrapper) -> SettingsWrapper:
    """The offline model, whatever the environment configures."""
    settings.LLM_MODEL_PROVIDER = "offline"
    settings.LLM_MODEL_NAME = "offline"
    settings.OFFLINE_MODEL_STREAM_DELAY = 0.0
    return settings


@pytest.fixture
def llm_server(offline: SettingsWrapper) -> Iterator[FakeLLMServer]:
    """The agent talks to a fake OpenAI server: provider openai, model gpt-test, no retries."""
    with FakeLLMServer() as server:
        offline.LLM_MODEL_PROVIDER = "openai"
        offline.OPENAI_BASE_URL = server.base_url
        offline.OPENAI_API_KEY = "test-key"
        offline.LLM_MODEL_NAME = "gpt-test"
        offline.LLM_MAX_RETRIES = 0
        offline.LLM_TIMEOUT_SECONDS = 2
        yield server


@pytest.fixture(scope="module")
def module_llm_server() -> Iterator[FakeLLMServer]:
    """A fake OpenAI server shared by a module's live server (reset it per test)."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fresh_langfuse() -> Iterator[None]:
    """No Langfuse client in this process before or after the test; turn tracing on with
    ``testing.langfuse.langfuse_settings``."""
    from testing.langfuse import reset_langfuse

    reset_langfuse()
    yield
    reset_langfuse()


@pytest.fixture
def receiver() -> Iterator[LangfuseReceiver]:
    """A local stand-in for Langfuse that records the spans the real SDK exports."""
    with LangfuseReceiver() as server:
        yield server
