"""The Celery app: ``celery -A config worker`` (evaluation jobs) and ``celery -A config beat``.

Settings come from Django's, prefixed ``CELERY_`` (``config.settings.celery``); tasks are found
in each app's ``tasks.py``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
