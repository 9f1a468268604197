"""The evaluation settings as `.env.example` ships them: empty values mean the defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from config.env import BASE_DIR


def _settings_with(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVALUATION_")}
    code = (
        "import json; from django.conf import settings; print(json.dumps({k: getattr(settings, k)"
        " for k in ('EVALUATION_REPORTS_DIR', 'EVALUATION_METRICS_DIR', 'EVALUATION_DATASET_USER')"
        "}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env={
            **clean,
            "APP_ENV": "local",
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "REDIS_HOST": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_empty_values_from_the_env_file_keep_the_default_folders() -> None:
    values = _settings_with(
        EVALUATION_REPORTS_DIR="", EVALUATION_METRICS_DIR="", EVALUATION_DATASET_USER=""
    )
    # Not "": that would write reports into whatever folder the command runs from.
    assert values["EVALUATION_REPORTS_DIR"] == str(BASE_DIR / "reports")
    assert values["EVALUATION_METRICS_DIR"] == str(BASE_DIR / "evaluations" / "metrics" / "prompts")
    assert values["EVALUATION_DATASET_USER"] == "evaluation-dataset@localhost"


def test_a_relative_reports_folder_is_under_the_project_root() -> None:
    values = _settings_with(EVALUATION_REPORTS_DIR="var/reports")
    assert values["EVALUATION_REPORTS_DIR"] == str(BASE_DIR / "var" / "reports")
