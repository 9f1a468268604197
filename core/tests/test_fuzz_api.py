"""Fuzzing: schemathesis against /api/schema on a live production-mode server, authenticated
as a superuser (every endpoint reachable), a bounded number of examples per operation: no 5xx,
and every status, content type, header and body matches the schema.

More examples, another seed, by hand:
``FUZZ_MAX_EXAMPLES=100 FUZZ_SEED=7 pytest core/tests/test_fuzz_api.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from testing.live import production_env, run_gunicorn

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def schemathesis_cli() -> str:
    found = Path(sys.executable).with_name("st")
    return str(found) if found.exists() else shutil.which("st") or "st"


@pytest.mark.timeout(600)
def test_every_endpoint_answers_as_its_schema_says(tmp_path: Path) -> None:
    superuser = UserFactory(is_superuser=True, is_staff=True)
    token = AccessToken.for_user(superuser)
    # The server executes background runs itself: no Celery worker runs here.
    with run_gunicorn(production_env(AGENT_RUNS_BACKEND="embedded"), workers=2) as url:
        result = subprocess.run(
            [
                schemathesis_cli(),
                "run",
                f"{url}/api/schema",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                os.environ.get("FUZZ_MAX_EXAMPLES", "10"),
                "--seed",
                os.environ.get("FUZZ_SEED", "1"),
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--max-failures",
                "50",
                "--warnings",
                "off",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=540,
        )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
