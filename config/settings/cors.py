"""CORS for browser clients on other origins (``BACKEND_CORS_ORIGINS``, comma-separated)."""

from config.env import env

CORS_ALLOWED_ORIGINS: list[str] = [
    origin.rstrip("/") for origin in env.list("BACKEND_CORS_ORIGINS", default=[])
]
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"]
