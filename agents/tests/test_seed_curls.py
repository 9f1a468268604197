"""The seed's three curl examples, run verbatim (only host and port replaced) against a live server.

``live_server`` serves the app from a thread of this process, on the test database; the agent
graph reads that database from worker threads, so the tests use ``transactional_db``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from pytest_django.live_server_helper import LiveServer

from accounts.services import first_superuser_ensure
from accounts.tests.factories import UserFactory
from agents.models import AgentRun
from testing.llm_server import FakeLLMServer, Reply

pytestmark = [
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
    pytest.mark.usefixtures("transactional_db", "offline"),
]

SEED_HOST = "http://localhost:8000"
LOGIN = (
    "curl -X POST http://localhost:8000/api/v1/login/access-token "
    '-H "Content-Type: application/x-www-form-urlencoded" '
    '-d "username=admin@example.com&password=changethis"'
)
RUN = (
    "curl -X POST http://localhost:8000/api/v1/agent/run "
    '-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
    """-d '{"message": "What users are in the system?"}'"""
)
RUNS = 'curl http://localhost:8000/api/v1/agent/runs -H "Authorization: Bearer $TOKEN"'

# curl would send localhost requests through a proxy configured in the environment.
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


def shell(command: str, base_url: str, token: str = "") -> str:
    """Run a seed command in bash with ``$TOKEN`` set; only the host:port is changed."""
    assert SEED_HOST in command
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env["TOKEN"] = token
    result = subprocess.run(
        ["bash", "-c", command.replace(SEED_HOST, base_url)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def access_token(login_output: str) -> str:
    """``jq -r .access_token``, as the README pipes it; plain JSON parsing without jq."""
    jq = shutil.which("jq")
    if jq is None:
        return str(json.loads(login_output)["access_token"])
    result = subprocess.run(
        [jq, "-r", ".access_token"],
        input=login_output,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


def seed_flow(live_server: LiveServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Login, run, list: the seed's walkthrough. Returns the run's and the list's bodies."""
    token = access_token(shell(LOGIN, live_server.url))
    assert token
    assert token != "null"
    run = json.loads(shell(RUN, live_server.url, token))
    runs = json.loads(shell(RUNS, live_server.url, token))
    return run, runs


def test_seed_curls_with_the_offline_model(live_server: LiveServer) -> None:
    admin = first_superuser_ensure()
    assert admin is not None
    UserFactory(email="ada@example.com")

    run, runs = seed_flow(live_server)

    assert run["status"] == "success", run
    assert run["provider"] == "offline"
    assert "admin@example.com" in run["response"]
    assert "ada@example.com" in run["response"]
    assert runs["results"][0]["id"] == run["run_id"]
    assert runs["results"][0]["input"] == "What users are in the system?"
    assert runs["results"][0]["status"] == "success"
    stored = AgentRun.objects.get(pk=run["run_id"])
    assert stored.user == admin
    assert [c["name"] for c in stored.tool_calls] == ["list_users"]


def test_seed_curls_with_an_openai_compatible_server(
    live_server: LiveServer, llm_server: FakeLLMServer
) -> None:
    first_superuser_ensure()
    llm_server.enqueue(
        Reply.text("1. List the users with list_users."),
        Reply.tool_calls([("list_users", {})]),
        Reply.text("There is one user: admin@example.com."),
    )

    run, runs = seed_flow(live_server)

    assert run["status"] == "success", run
    assert (run["provider"], run["model"]) == ("openai", "gpt-test")
    assert run["response"] == "There is one user: admin@example.com."
    assert run["plan"] == "1. List the users with list_users."
    # The answer came from the tool's real result, which the LLM received.
    tool_message = llm_server.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool"
    users = json.loads(tool_message["content"])["users"]
    assert "admin@example.com" in [u["email"] for u in users]
    assert runs["results"][0]["id"] == run["run_id"]
    assert (runs["results"][0]["provider"], runs["results"][0]["model"]) == ("openai", "gpt-test")
