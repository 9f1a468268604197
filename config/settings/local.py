"""Local development: the embedded default (SQLite, in-process cache, offline model)."""

from config.env import env
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "django-insecure-local-only-key-do-not-use-in-production"  # noqa: F405
ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]  # noqa: F405
FIRST_SUPERUSER = FIRST_SUPERUSER or "admin@example.com"  # noqa: F405
FIRST_SUPERUSER_PASSWORD = FIRST_SUPERUSER_PASSWORD or "changethis"  # noqa: F405
USERS_OPEN_REGISTRATION = env.bool("USERS_OPEN_REGISTRATION", default=True)

# Serve static files straight from the apps, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405  (WhiteNoise warns about a missing STATIC_ROOT)
