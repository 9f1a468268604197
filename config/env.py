"""The environment: the only place that decides where configuration comes from.

Resolution chain, highest first: process environment variables, ``.env.{APP_ENV}``, ``.env``.
``APP_ENV`` itself may come from the environment or from ``.env``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
APP_ENVS = ("local", "staging", "production", "test")


class _FileEnv(environ.Env):
    """Reads an env file into a private dict instead of ``os.environ``."""

    ENVIRON: dict[str, str] = {}


def read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    _FileEnv.ENVIRON = {}
    _FileEnv.read_env(str(path), overwrite=True)
    return dict(_FileEnv.ENVIRON)


def load_env_chain(
    base_dir: Path = BASE_DIR, environ_: MutableMapping[str, str] | None = None
) -> str:
    """Fill ``environ_`` (default ``os.environ``) from the env files and return ``APP_ENV``.

    Values already in the environment always win; ``.env.{APP_ENV}`` wins over ``.env``.
    """
    target = os.environ if environ_ is None else environ_
    base_values = read_env_file(base_dir / ".env")
    app_env = (target.get("APP_ENV") or base_values.get("APP_ENV") or "local").strip().lower()
    if app_env not in APP_ENVS:
        raise ImproperlyConfigured(
            f"APP_ENV={app_env!r} is not valid: use one of {', '.join(APP_ENVS)}."
        )
    env_values = read_env_file(base_dir / f".env.{app_env}")
    for key, value in {**base_values, **env_values}.items():
        target.setdefault(key, value)
    target["APP_ENV"] = app_env
    return app_env


class LiteralEnv(environ.Env):
    """``environ.Env`` that reads every value literally.

    django-environ takes a value starting with ``$`` for a reference to another variable
    (``DATABASE_PASSWORD=$ecret`` would read the variable ``ecret``, and silently fall back to
    the default when there is none). Passwords and keys start with ``$`` too: here they are
    what they say.
    """

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if isinstance(raw, str) and raw.startswith("$"):
            return raw if cast is None else self.parse_value(raw, cast)
        return super().get_value(var, cast=cast, default=default, parse_default=parse_default)


env = LiteralEnv()
