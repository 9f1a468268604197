"""What staging and production share: no defaults for secrets, secure cookies, HSTS, fail fast."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env
from config.settings.base import *  # noqa: F403

DEBUG = False  # never on outside local, whatever the environment says

if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured(f"SECRET_KEY must be set when APP_ENV={APP_ENV}.")  # noqa: F405
if not ALLOWED_HOSTS:  # noqa: F405
    raise ImproperlyConfigured(f"ALLOWED_HOSTS must be set when APP_ENV={APP_ENV}.")  # noqa: F405
if bool(FIRST_SUPERUSER) != bool(FIRST_SUPERUSER_PASSWORD):  # noqa: F405
    raise ImproperlyConfigured("Set both FIRST_SUPERUSER and FIRST_SUPERUSER_PASSWORD, or neither.")

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Under compose.yaml: the names of the stack's secrets, and those the env file really set (compose
# fills in development defaults for the others). config.checks refuses the gap in production.
COMPOSE_SECRETS: list[str] = [
    n.strip() for n in env.list("COMPOSE_SECRETS", default=[]) if n.strip()
]
COMPOSE_SECRETS_SET: list[str] = [
    n.strip() for n in env.list("COMPOSE_SECRETS_SET", default=[]) if n.strip()
]
