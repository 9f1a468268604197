"""Settings shared by every environment. Integration settings live in their own modules."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from config.env import APP_ENVS, BASE_DIR, env

APP_ENV: str = env.str("APP_ENV", default="local")
assert APP_ENV in APP_ENVS  # validated by config.env.load_env_chain

VERSION = "0.1.0"
PROJECT_NAME = env.str("PROJECT_NAME", default="Django Agents")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=[])
if env.bool("ALLOWED_HOSTS_INCLUDE_OWN_IP", default=False):
    # Containers and pods: a scraper or probe that addresses this replica by its IP (Prometheus
    # service discovery, Kubernetes probes) sends that IP as Host.
    with contextlib.suppress(OSError):  # no resolvable hostname: names only
        ALLOWED_HOSTS += socket.gethostbyname_ex(socket.gethostname())[2]
    ALLOWED_HOSTS += [ip for ip in env.list("POD_IP", default=[]) if ip]
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files
    "django_prometheus",
    "core",
    "accounts",
    "agents",
    "evaluations",
    "config.apps.ConfigConfig",  # the startup checks (config/checks.py)
]

MIDDLEWARE = [
    # Every one sync and async capable, so that under ASGI the stack runs in async mode; those
    # from config/ run on the event loop without Django's MiddlewareMixin thread hops
    # (config/middleware.py). Security, CSRF and X-Frame-Options stay Django's own classes:
    # `check --deploy` looks for them by name.
    "config.metrics.PrometheusBeforeMiddleware",
    "config.logging.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",  # WhiteNoise
    "corsheaders.middleware.CorsMiddleware",
    "config.middleware.ApiErrorMiddleware",
    "config.middleware.OptionalSlashMiddleware",
    "config.middleware.SessionMiddleware",
    "config.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.metrics.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "agents.pages.chat_context",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/chat/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# The first superuser, created idempotently after `migrate` (see accounts.apps).
FIRST_SUPERUSER: str = env.str("FIRST_SUPERUSER", default="")
FIRST_SUPERUSER_PASSWORD: str = env.str("FIRST_SUPERUSER_PASSWORD", default="")
USERS_OPEN_REGISTRATION: bool = env.bool("USERS_OPEN_REGISTRATION", default=False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here (the Docker image does it at build time); WhiteNoise
# serves it, with the hashed names of the manifest, so that files can be cached forever.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576)
# No endpoint takes files: an upload is held in memory and capped like any other body.
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Every request body, JSON, form or multipart, whatever the endpoint (config.middleware.
# RequestBodyLimitMiddleware, before Django reads it): a larger one is a 413; one that is not
# complete this many seconds after the headers, a 408. The headers themselves are bounded by
# REQUEST_HEADER_TIMEOUT_SECONDS in the server (config.server).
REQUEST_BODY_MAX_BYTES: int = env.int("REQUEST_BODY_MAX_BYTES", default=DATA_UPLOAD_MAX_MEMORY_SIZE)
REQUEST_BODY_TIMEOUT_SECONDS: float = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=30.0)

# Behind a TLS-terminating proxy (the docker/ setup), trust its scheme header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

from config.settings.agent import *  # noqa: E402,F403
from config.settings.api import *  # noqa: E402,F403
from config.settings.cache import *  # noqa: E402,F403
from config.settings.celery import *  # noqa: E402,F403
from config.settings.cors import *  # noqa: E402,F403
from config.settings.database import *  # noqa: E402,F403
from config.settings.evaluation import *  # noqa: E402,F403
from config.settings.langfuse import *  # noqa: E402,F403
from config.settings.llm import *  # noqa: E402,F403
from config.settings.logging import *  # noqa: E402,F403
from config.settings.metrics import *  # noqa: E402,F403
from config.settings.ratelimit import *  # noqa: E402,F403
