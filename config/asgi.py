"""ASGI entry point: uvicorn, or gunicorn with uvicorn workers (``config.server``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (after the setup above)

from config.middleware import RequestBodyLimitMiddleware  # noqa: E402

application = RequestBodyLimitMiddleware(
    django_application,
    max_bytes=settings.REQUEST_BODY_MAX_BYTES,
    timeout=settings.REQUEST_BODY_TIMEOUT_SECONDS,
)

# Runs left ``running`` by a worker that died are ended here too (agents.sweeper).
from agents.sweeper import sweep_in_background  # noqa: E402

sweep_in_background()
