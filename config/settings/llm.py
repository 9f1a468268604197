"""The LLM. ``LLM_MODEL_PROVIDER``: openai | azure | anthropic | offline.

With no provider set, the first configured key picks it; with no key at all the provider is
``offline``: a deterministic local model that needs no network (the embedded default).
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env

OPENAI_API_KEY: str = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL: str = env.str("OPENAI_BASE_URL", default="")
ANTHROPIC_API_KEY: str = env.str("ANTHROPIC_API_KEY", default="")
AZURE_OPENAI_ENDPOINT: str = env.str("AZURE_OPENAI_ENDPOINT", default="")
AZURE_OPENAI_API_KEY: str = env.str("AZURE_OPENAI_API_KEY", default="")
AZURE_OPENAI_API_VERSION: str = env.str("AZURE_OPENAI_API_VERSION", default="2024-10-21")

LLM_PROVIDERS = ("openai", "azure", "anthropic", "offline")
_provider = env.str("LLM_MODEL_PROVIDER", default="").strip().lower()
if not _provider:
    if OPENAI_API_KEY or OPENAI_BASE_URL:
        _provider = "openai"
    elif AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT:
        _provider = "azure"
    elif ANTHROPIC_API_KEY:
        _provider = "anthropic"
    else:
        _provider = "offline"
if _provider not in LLM_PROVIDERS:
    raise ImproperlyConfigured(
        f"LLM_MODEL_PROVIDER={_provider!r} is not valid: use one of {', '.join(LLM_PROVIDERS)}."
    )
if _provider == "openai" and not (OPENAI_API_KEY or OPENAI_BASE_URL):
    raise ImproperlyConfigured("LLM_MODEL_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.")
if _provider == "azure" and not (AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT):
    raise ImproperlyConfigured(
        "LLM_MODEL_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY."
    )
if _provider == "anthropic" and not ANTHROPIC_API_KEY:
    raise ImproperlyConfigured("LLM_MODEL_PROVIDER=anthropic needs ANTHROPIC_API_KEY.")
LLM_MODEL_PROVIDER: str = _provider

_default_models = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "offline": "offline",
}
LLM_MODEL_NAME: str = env.str("LLM_MODEL_NAME", default="") or _default_models[_provider]
LLM_TEMPERATURE: float = env.float("LLM_TEMPERATURE", default=0.7)
LLM_MAX_TOKENS: int = env.int("LLM_MAX_TOKENS", default=2048)
LLM_TIMEOUT_SECONDS: float = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
LLM_MAX_RETRIES: int = env.int("LLM_MAX_RETRIES", default=2)
# Seconds between the offline model's streamed words, so that the chat page visibly streams.
OFFLINE_MODEL_STREAM_DELAY: float = env.float("OFFLINE_MODEL_STREAM_DELAY", default=0.02)
