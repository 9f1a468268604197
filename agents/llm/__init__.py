"""One access point for the chat model: ``get_chat_model()``, built from settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from agents.llm.offline import OfflineChatModel


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    model: str


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], BaseChatModel] = {}


def model_info() -> ModelInfo:
    return ModelInfo(provider=settings.LLM_MODEL_PROVIDER, model=settings.LLM_MODEL_NAME)


def _settings_key() -> tuple[Any, ...]:
    names = (
        "LLM_MODEL_PROVIDER", "LLM_MODEL_NAME", "LLM_TEMPERATURE", "LLM_MAX_TOKENS",
        "LLM_TIMEOUT_SECONDS", "LLM_MAX_RETRIES", "OPENAI_API_KEY", "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_API_VERSION", "OFFLINE_MODEL_STREAM_DELAY",
    )  # fmt: skip
    return tuple(getattr(settings, name) for name in names)


def build_chat_model() -> BaseChatModel:
    """A new chat model for the configured provider (clients keep their own connection pools)."""
    provider = settings.LLM_MODEL_PROVIDER
    common: dict[str, Any] = {
        "temperature": settings.LLM_TEMPERATURE,
        "max_tokens": settings.LLM_MAX_TOKENS,
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "max_retries": settings.LLM_MAX_RETRIES,
    }
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=settings.LLM_MODEL_NAME,
            api_key=settings.OPENAI_API_KEY or "not-needed",  # type: ignore[arg-type]
            base_url=settings.OPENAI_BASE_URL or None,
            stream_usage=True,
            **common,
        )
    if provider == "azure":
        from langchain_openai import AzureChatOpenAI

        return AzureChatOpenAI(
            azure_deployment=settings.LLM_MODEL_NAME,
            azure_endpoint=settings.AZURE_OPENAI_ENDPOINT,
            api_key=settings.AZURE_OPENAI_API_KEY,  # type: ignore[arg-type]
            api_version=settings.AZURE_OPENAI_API_VERSION,
            stream_usage=True,
            **common,
        )
    if provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        return ChatAnthropic(  # type: ignore[call-arg]
            model=settings.LLM_MODEL_NAME,
            api_key=SecretStr(settings.ANTHROPIC_API_KEY),
            temperature=settings.LLM_TEMPERATURE,
            max_tokens=settings.LLM_MAX_TOKENS,
            default_request_timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=settings.LLM_MAX_RETRIES,
        )
    return OfflineChatModel(
        model_name=settings.LLM_MODEL_NAME, stream_delay=settings.OFFLINE_MODEL_STREAM_DELAY
    )


def get_chat_model() -> BaseChatModel:
    """The process's chat model, cached; rebuilt when the LLM settings change (tests)."""
    key = _settings_key()
    with _lock:
        model = _cache.get(key)
        if model is None:
            _cache.clear()
            model = _cache[key] = build_chat_model()
        return model
