import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, load_env_chain


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_environment_beats_env_app_file_beats_env_file(tmp_path):
    write(tmp_path / ".env", "APP_ENV=staging\nA=from-env\nB=from-env\nC=from-env\n")
    write(tmp_path / ".env.staging", "B=from-env-staging\nC=from-env-staging\n")
    environ = {"C": "from-process"}
    assert load_env_chain(tmp_path, environ) == "staging"
    assert environ["A"] == "from-env"
    assert environ["B"] == "from-env-staging"
    assert environ["C"] == "from-process"


def test_app_env_from_process_picks_the_env_file(tmp_path):
    write(tmp_path / ".env", "APP_ENV=staging\nX=base\n")
    write(tmp_path / ".env.production", "X=prod\n")
    write(tmp_path / ".env.staging", "X=staging\n")
    environ = {"APP_ENV": "production"}
    assert load_env_chain(tmp_path, environ) == "production"
    assert environ["X"] == "prod"


def test_default_is_local_without_files(tmp_path):
    environ: dict[str, str] = {}
    assert load_env_chain(tmp_path, environ) == "local"


def test_unknown_app_env_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="APP_ENV='qa' is not valid"):
        load_env_chain(tmp_path, {"APP_ENV": "qa"})


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_app_env_stops_the_start_with_a_clear_message():
    result = manage("check", APP_ENV="prod")
    assert result.returncode != 0
    assert "APP_ENV='prod' is not valid: use one of local, staging, production, test" in (
        result.stderr
    )


def test_production_requires_a_secret_key():
    result = manage("check", APP_ENV="production", SECRET_KEY="", ALLOWED_HOSTS="api.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when APP_ENV=production" in result.stderr


def test_check_deploy_is_clean_in_production(tmp_path):
    # collectstatic's manifest (config.E002 without it); config/tests/test_deployment.py
    # collects for real.
    write(tmp_path / "staticfiles.json", '{"paths": {}, "version": "1.1"}')
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        APP_ENV="production",
        SECRET_KEY="k7#Qz!v2@Lp9$Xw4^Tn6&Rb8*Hs1(Jd3)Mf5-Gc0+Ya_Ue=Oi~" * 2,
        ALLOWED_HOSTS="api.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/agents",
        FIRST_SUPERUSER="",
        STATIC_ROOT=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_local_defaults(settings):
    # The suite runs with APP_ENV=test; these are the documented defaults it shares with local.
    assert settings.APP_ENV == "test"
    assert settings.FIRST_SUPERUSER == "admin@example.com"
    assert settings.DEBUG is False


def test_values_starting_with_a_dollar_are_read_literally(monkeypatch):
    from config.env import env

    monkeypatch.setenv("TEST_DOLLAR_SECRET", "$ecret-value")
    monkeypatch.setenv("TEST_DOLLAR_LIST", "$a,$b")
    monkeypatch.setenv("ecret-value", "the wrong variable")
    assert env.str("TEST_DOLLAR_SECRET", default="") == "$ecret-value"
    assert env.list("TEST_DOLLAR_LIST", default=[]) == ["$a", "$b"]
    monkeypatch.setenv("TEST_DOLLAR_URL", "$postgres://u:p@h:5432/d")
    assert env.str("TEST_DOLLAR_URL") == "$postgres://u:p@h:5432/d"
    assert env.str("TEST_DOLLAR_MISSING", default="fallback") == "fallback"


def test_a_dollar_secret_key_reaches_the_settings():
    code = (
        "from django.conf import settings; print(settings.SECRET_KEY); "
        "print(settings.DATABASES['default']['PASSWORD'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "APP_ENV": "test",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": "$3cret-key-that-starts-with-a-dollar-sign-and-is-long-enough",
            "DATABASE_URL": "postgres://user:%24pw@127.0.0.1:5432/db",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[-2] == "$3cret-key-that-starts-with-a-dollar-sign-and-is-long-enough"
    assert lines[-1] == "$pw"
