"""The environment: the only place that decides where configuration comes from.

Resolution chain, highest first: process environment variables, ``.env.{APP_ENV}``, ``.env``.
``APP_ENV`` itself may come from the environment or from ``.env``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

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


env = environ.Env()
