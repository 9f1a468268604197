"""One access point for the chat model: ``get_chat_model()``, built from settings."""

from __future__ import annotations

import functools
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


class _SendsMessagesAsIs:
    """A mixin for LangChain's OpenAI chat models: the request body is the same, but its messages
    and tools go to the ``openai`` SDK as ``extra_body``, which it sends as they are, instead of
    walking them through its type-driven request transformation (about 2 ms of CPU per call for
    a conversation with six tools; LangChain has already built them as the API expects)."""

    def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
        payload: dict[str, Any] = super()._get_request_payload(  # type: ignore[misc]
            input_, stop=stop, **kwargs
        )
        if "messages" not in payload or "response_format" in payload:
            return payload  # the Responses API, or structured output: left to the SDK
        extra = dict(payload.get("extra_body") or {})
        for key in ("messages", "tools"):
            if key in payload:
                extra[key] = payload.pop(key)
        payload["messages"] = []  # required by the SDK; replaced by extra_body's on the wire
        payload["extra_body"] = extra
        return payload


@functools.cache
def _openai_classes() -> tuple[Any, Any]:  # ChatOpenAI, AzureChatOpenAI: imported when used
    from langchain_openai import AzureChatOpenAI, ChatOpenAI

    class OpenAIChatModel(_SendsMessagesAsIs, ChatOpenAI):
        pass

    class AzureOpenAIChatModel(_SendsMessagesAsIs, AzureChatOpenAI):
        pass

    return OpenAIChatModel, AzureOpenAIChatModel


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
        ChatOpenAI, _ = _openai_classes()

        return ChatOpenAI(
            model=settings.LLM_MODEL_NAME,
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            stream_usage=True,
            **common,
        )
    if provider == "azure":
        _, AzureChatOpenAI = _openai_classes()

        return AzureChatOpenAI(
            azure_deployment=settings.LLM_MODEL_NAME,
            azure_endpoint=settings.AZURE_OPENAI_ENDPOINT,
            api_key=settings.AZURE_OPENAI_API_KEY,
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
