"""Langfuse in tests: settings that trace to a local receiver, and the reset between tests.

The SDK keeps one client per public key and process, and a key whose client was shut down gets
no new one (see ``agents.tracing``). So every call of :func:`langfuse_settings` uses a public key
this process has never used: each test gets a client of its own, made from its own settings,
after :func:`reset_langfuse` shut the previous test's client down. The root ``conftest.py``'s
``fresh_langfuse`` fixture does the reset before and after a test::

    def test_traced(settings, receiver, fresh_langfuse):
        langfuse_settings(settings, receiver.base_url)
        ...                                     # trace something
        assert flush_langfuse()
        receiver.wait_for_spans(lambda s: s.name == "agent_run")
"""

from __future__ import annotations

import uuid
from typing import Any

from pytest_django.fixtures import Settings as SettingsWrapper

from agents.tracing import close_langfuse


def langfuse_settings(settings: SettingsWrapper, host: str, **overrides: Any) -> SettingsWrapper:
    """Tracing on, to ``host``, with a new public key, every run sampled, nothing sent before an
    explicit flush; ``overrides`` set ``LANGFUSE_<NAME>`` (``sample_rate=0.0``, ...)."""
    settings.LANGFUSE_ENABLED = True
    settings.LANGFUSE_PUBLIC_KEY = f"pk-lf-test-{uuid.uuid4().hex}"
    settings.LANGFUSE_SECRET_KEY = "sk-lf-test"
    settings.LANGFUSE_HOST = host
    settings.LANGFUSE_PROJECT_ID = ""
    settings.LANGFUSE_SAMPLE_RATE = 1.0
    settings.LANGFUSE_TIMEOUT_SECONDS = 1
    settings.LANGFUSE_FLUSH_AT = 512
    settings.LANGFUSE_FLUSH_INTERVAL = 60.0  # nothing leaves before an explicit flush
    settings.LANGFUSE_TAGS = ["agents"]
    for name, value in overrides.items():
        setattr(settings, f"LANGFUSE_{name.upper()}", value)
    return settings


def reset_langfuse(timeout: float = 5.0) -> None:
    """Shut this process's Langfuse client down (flushing, at most ``timeout`` s) and forget it."""
    close_langfuse(timeout=timeout)
