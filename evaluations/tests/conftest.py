"""Fixtures of the evaluations tests: a judge server (the fake OpenAI server, answering as a
judge would), reports in a temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from testing.llm_server import FakeLLMServer, Reply


def verdict(score: object, reasoning: str = "It answers the question.", **kwargs: object) -> Reply:
    """A judge's answer: JSON with reasoning first, then the score."""
    return Reply.text(json.dumps({"reasoning": reasoning, "score": score}), **kwargs)


@pytest.fixture(autouse=True)
def _reports_dir(settings: SettingsWrapper, tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    settings.EVALUATION_REPORTS_DIR = str(folder)
    return folder


@pytest.fixture
def reports_dir(_reports_dir: Path) -> Path:
    return _reports_dir


@pytest.fixture
def judge_server(settings: SettingsWrapper) -> Iterator[FakeLLMServer]:
    """The judge is a real OpenAI-compatible HTTP server; every answer 0.8 unless scripted."""
    with FakeLLMServer() as server:
        server.default_reply = verdict(0.8, prompt_tokens=100, completion_tokens=20)
        settings.EVALUATION_BASE_URL = server.base_url
        settings.EVALUATION_API_KEY = "judge-key"
        settings.EVALUATION_LLM = "judge-test"
        settings.EVALUATION_MAX_RETRIES = 2
        settings.EVALUATION_RETRY_MAX_WAIT = 3.0
        settings.EVALUATION_TIMEOUT_SECONDS = 5.0
        settings.EVALUATION_SLEEP_TIME = 0.0
        settings.EVALUATION_CONCURRENCY = 4
        settings.LLM_PRICES = {"judge-test": {"prompt": 0.001, "completion": 0.002}}
        yield server
