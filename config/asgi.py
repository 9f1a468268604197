"""ASGI entry point: uvicorn, or gunicorn with uvicorn workers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

# Runs left ``running`` by a worker that died are ended here too (agents.sweeper).
from agents.sweeper import sweep_in_background  # noqa: E402

sweep_in_background()
