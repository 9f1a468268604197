"""Logging: readable text in local, one JSON object a line elsewhere.

Every line carries ``correlation_id`` (the request's ``X-Request-ID``) and, where known,
``user_id``, ``run_id``, ``thread_id`` and ``trace_id`` (see ``config.logging``).
"""

from config.env import env

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT: str = env.str(
    "LOG_FORMAT", default="text" if env.str("APP_ENV", default="local") == "local" else "json"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)-8s [%(correlation_id)s] %(name)s: %(message)s"
        },
        "json": {
            "()": "config.logging.JsonContextFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,  # ISO 8601, UTC
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives "django" a console handler of its own (with DEBUG on):
        # without this, each of its lines would be printed twice, once unformatted.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Uvicorn's own access log has no correlation id; ours (config.access) does.
        "uvicorn.access": {"level": "WARNING"},
    },
}
