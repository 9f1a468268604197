"""Production: PostgreSQL, Redis, a real LLM; every secret from the environment."""

from config.settings._deployed import *  # noqa: F403
