"""Fixtures for the agent tests: the model the agent talks to.

``offline``: the deterministic local model (no network). ``llm_server``: a real
OpenAI-compatible HTTP server (``tests.llm_server.FakeLLMServer``) that the agent reaches through
``ChatOpenAI``, exactly as it would reach OpenAI; script its answers with ``Reply`` and read what
the agent sent in ``server.requests``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.langfuse_receiver import LangfuseReceiver
from tests.llm_server import FakeLLMServer


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
    """No Langfuse client in this process before or after the test."""
    from agents import tracing

    tracing.reset_for_tests()
    yield
    tracing.reset_for_tests()


@pytest.fixture
def receiver() -> Iterator[LangfuseReceiver]:
    """A local stand-in for Langfuse that records the spans the real SDK exports."""
    with LangfuseReceiver() as server:
        yield server
