"""Startup checks: what must hold before a deployed server takes its first request.

Django system checks, registered by ``config.apps.ConfigConfig``. Both carry the ``startup``
tag; the production server runs that tag in every worker before it answers anything
(``docker/gunicorn.conf.py``, ``post_worker_init``), so a failure stops the start with the
message below instead of failing request by request.

- ``config.E001`` (every command that runs checks: ``check``, ``migrate``, the server): with
  ``APP_ENV=production`` a secret still has a development default: one of compose.yaml's
  ``dev-only-…`` values, the seed's ``changethis``, or a compose secret left out of the env
  file (compose tells the app which ones were set, see ``COMPOSE_SECRETS`` in
  ``config/settings/_deployed.py``).
- ``config.E002`` (``check --deploy`` and the server): ``DEBUG`` is off and static files use a
  manifest storage, but ``collectstatic`` has not written the manifest; every page with a
  static file would answer 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import STATICFILES_STORAGE_ALIAS, settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core import checks
from django.core.files.storage import storages

STARTUP_TAG = "startup"

# Every development default in compose.yaml contains this; production must replace them all.
DEV_DEFAULT_MARKER = "dev-only"
# The seed's and local's first-superuser password.
KNOWN_DEFAULT_PASSWORDS = frozenset({"changethis"})


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _app_secrets() -> Iterable[tuple[str, str]]:
    """(setting name, value) of every secret the app itself holds."""
    yield "SECRET_KEY", settings.SECRET_KEY
    yield "FIRST_SUPERUSER_PASSWORD", settings.FIRST_SUPERUSER_PASSWORD
    for alias, database in settings.DATABASES.items():
        yield f"DATABASES[{alias!r}] password", str(database.get("PASSWORD") or "")
    yield "REDIS_URL password", _url_password(getattr(settings, "REDIS_URL", ""))
    yield "CELERY_BROKER_URL password", _url_password(getattr(settings, "CELERY_BROKER_URL", ""))
    yield "LANGFUSE_PUBLIC_KEY", getattr(settings, "LANGFUSE_PUBLIC_KEY", "")
    yield "LANGFUSE_SECRET_KEY", getattr(settings, "LANGFUSE_SECRET_KEY", "")
    yield "METRICS_BEARER_TOKEN", getattr(settings, "METRICS_BEARER_TOKEN", "")


def _is_dev_default(value: str) -> bool:
    return DEV_DEFAULT_MARKER in value.lower() or value in KNOWN_DEFAULT_PASSWORDS


def production_secrets_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if settings.APP_ENV != "production":
        return []
    defaulted = [name for name, value in _app_secrets() if value and _is_dev_default(value)]
    required: list[str] = getattr(settings, "COMPOSE_SECRETS", [])
    provided = set(getattr(settings, "COMPOSE_SECRETS_SET", []))
    not_set = [name for name in required if name not in provided]
    errors: list[checks.CheckMessage] = []
    if defaulted:
        errors.append(
            checks.Error(
                "APP_ENV=production but these secrets still have a development default: "
                f"{', '.join(defaulted)}.",
                hint="Set real values in the environment or the env file (see .env.example; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))').",
                id="config.E001",
            )
        )
    if not_set:
        errors.append(
            checks.Error(
                "APP_ENV=production but compose.yaml uses its development defaults for: "
                f"{', '.join(not_set)}.",
                hint="Set each of them in .env (every one is listed in .env.example), then "
                "`docker compose up -d` again.",
                id="config.E001",
            )
        )
    return errors


def static_manifest_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    storage = storages[STATICFILES_STORAGE_ALIAS]
    if settings.DEBUG or not isinstance(storage, ManifestFilesMixin):
        return []
    location = f"{settings.STATIC_ROOT}/{storage.manifest_name}"
    hint = (
        "Run `python manage.py collectstatic --noinput` with the same settings (STATIC_ROOT="
        f"{settings.STATIC_ROOT}) before starting the server; the Docker image does it at build "
        "time."
    )
    if not storage.manifest_storage.exists(storage.manifest_name):
        return [
            checks.Error(
                f"The static files manifest {location} is missing: every page that uses a "
                "static file (the admin, the chat, the API docs) would answer 500.",
                hint=hint,
                id="config.E002",
            )
        ]
    try:
        storage.load_manifest()
    except ValueError as exc:
        return [
            checks.Error(
                f"The static files manifest {location} cannot be read: {exc}",
                hint=hint,
                id="config.E002",
            )
        ]
    return []


def register() -> None:
    checks.register(production_secrets_check, STARTUP_TAG, checks.Tags.security)
    checks.register(static_manifest_check, STARTUP_TAG, deploy=True)


def startup_errors() -> list[str]:
    """The startup checks' errors, formatted (empty: the server may start)."""
    messages = checks.run_checks(tags=[STARTUP_TAG], include_deployment_checks=True)
    return [
        f"{message.id}: {message.msg}" + (f"\n    HINT: {message.hint}" if message.hint else "")
        for message in messages
        if message.is_serious()
    ]
