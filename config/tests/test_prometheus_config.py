"""docker/prometheus and docker/grafana (mounted by compose.yaml): promtool checks the
configuration and the alert rules, and a real Prometheus (Debian's ``prometheus``) scrapes the
app under a short load, after which every query of every Grafana panel must parse and return
data (a number, not only NaN)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from testing.live import BASE_DIR, database_env, free_port, run_server

DOCKER = BASE_DIR / "docker"
PROMETHEUS_DIR = DOCKER / "prometheus"
GRAFANA_DIR = DOCKER / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
DATASOURCE_UID = "prometheus"

# What Grafana puts in place of its variables, for queries sent to Prometheus directly.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "model": ".+",  # the "All" value of the model variable
}


def binary(name: str) -> str:
    """A Prometheus tool: required in CI (.ci/run installs Debian's prometheus), else optional."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (apt-get install prometheus)")
        pytest.skip(f"{name} is not installed")
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # inside rows


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


# -- promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    # In compose the token file is mounted at /run/secrets/metrics-token; here a copy of the
    # config points at a temporary one, so that promtool checks that the files exist too.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (tmp_path / "metrics-token").write_text("token")
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    [app] = [job for job in config["scrape_configs"] if job["job_name"] == "django-agents"]
    assert app["authorization"]["credentials_file"] == "/run/secrets/metrics-token"
    app["authorization"]["credentials_file"] = str(tmp_path / "metrics-token")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "AgentHighErrorRate",
        "AgentHighLatencyP95",
        "AgentNoTraffic",
        "AgentTokenSpike",
    } <= alerts


def test_the_alerts_fire_when_they_should() -> None:
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana files ----------------------------------------------------------------------------


def test_grafana_provisioning_matches_the_dashboards_and_compose() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert [d["uid"] for d in datasources] == [DATASOURCE_UID]
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"]
    compose = yaml.safe_load((BASE_DIR / "compose.yaml").read_text())
    grafana_volumes = compose["services"]["grafana"]["volumes"]
    assert f"./docker/grafana/dashboards:{providers[0]['options']['path']}:ro" in grafana_volumes
    assert "./docker/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    prometheus = compose["services"]["prometheus"]
    assert "./docker/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert {"source": "metrics-token", "target": "/run/secrets/metrics-token"} in (
        prometheus["configs"]
    )
    token = compose["x-backend-env"]["METRICS_BEARER_TOKEN"]
    assert compose["configs"]["metrics-token"]["content"] == token

    dashboards = [json.loads(path.read_text()) for path in DASHBOARDS]
    assert {d["title"] for d in dashboards} == {
        "Agent performance overview",
        "Token usage and costs",
        "Error rates and latency percentiles",
        "Active executions over time",
        "Evaluation scores",
    }
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    for dashboard in dashboards:
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
                substitute(target["expr"])  # only variables we know
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), dashboard["title"]


# -- a real Prometheus scraping the app -------------------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        return body

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)

    def value(self, expr: str) -> float:
        result = self.query(expr).get("data", {}).get("result") or []
        return float(result[0]["value"][1]) if result else float("nan")

    def wait_for(self, expr: str, minimum: float, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.value(expr) >= minimum:
                return
            time.sleep(0.25)
        raise AssertionError(f"{expr} did not reach {minimum}: {self.value(expr)}")


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """Starts /usr/bin/prometheus scraping the given app every second, with alerts.yml."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(app_url: str, token: str) -> Prometheus:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "django-agents",
                    "metrics_path": "/metrics",
                    "authorization": {"type": "Bearer", "credentials": token},
                    "static_configs": [{"targets": [app_url.removeprefix("http://")]}],
                }
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log = tmp_path / "prometheus.log"
        logs.append(log)
        cmd = [
            binary("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with log.open("wb") as out:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=out))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == HTTPStatus.OK:
                    return Prometheus(url)
            except httpx.TransportError:
                pass
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def generate_load(url: str, user: Any) -> int:
    """One round of traffic: runs (tools that answer and one that errors, one streamed),
    probes, and logins over their rate limit. Returns the number of runs."""
    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == HTTPStatus.OK
    messages = [
        "What users are in the system?",
        "Please fetch http://127.0.0.1:1/private for me",  # the HTTP tool refuses: a tool error
        "Hello there!",
    ]
    for message in messages:
        response = httpx.post(
            f"{url}/api/v1/agent/run", json={"message": message}, headers=headers, timeout=60
        )
        assert response.status_code == HTTPStatus.OK, response.text
    with httpx.stream(
        "POST",
        f"{url}/api/v1/agent/run/stream",
        json={"message": "How many users are there?"},
        headers=headers,
        timeout=60,
    ) as stream:
        assert stream.status_code == HTTPStatus.OK
        assert "event: done" in stream.read().decode()
    # Score the runs (the offline judge, in the server's own process) for the evaluations panels.
    job = httpx.post(f"{url}/api/v1/agent/evaluations", json={}, headers=headers, timeout=10)
    assert job.status_code == HTTPStatus.ACCEPTED, job.text
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(
            f"{url}/api/v1/agent/evaluations/jobs/{job.json()['job_id']}",
            headers=headers,
            timeout=10,
        ).json()
        if status["status"] in ("done", "failed"):
            assert status["status"] == "done", status
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    for _ in range(3):  # LOGIN_RATE_LIMIT is 2/m: some of these are refused
        httpx.post(
            f"{url}/api/v1/login/access-token",
            data={"username": "nobody@example.com", "password": "wrong"},
            timeout=10,
        )
    return len(messages) + 1


def _is_number(value: str) -> bool:
    return value.lower() not in {"nan", "+inf", "-inf"}


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_every_dashboard_query_returns_data_from_a_real_prometheus(prometheus_for: Any) -> None:
    binary("prometheus")
    user = UserFactory(is_superuser=True, is_staff=True)
    token = f"scrape-{uuid.uuid4().hex}"
    env = {
        **database_env(),
        "LLM_MODEL_PROVIDER": "offline",
        "LLM_MODEL_NAME": "offline",
        "OFFLINE_MODEL_STREAM_DELAY": "0",
        "LLM_PRICES": json.dumps({"offline": {"prompt": 0.001, "completion": 0.002}}),
        "LOGIN_RATE_LIMIT": "2/m",
        "CACHE_KEY_PREFIX": f"metrics-test-{uuid.uuid4().hex[:8]}",
        "METRICS_BEARER_TOKEN": token,
        "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    with run_server(env) as app_url:
        prometheus = prometheus_for(app_url, token)
        prometheus.wait_for('up{job="django-agents"}', 1)

        # Two rounds with scrapes in between: a labelled series is born at its first count,
        # and only later counts make its rate move.
        runs = 0
        for _ in range(2):
            runs += generate_load(app_url, user)
            prometheus.wait_for("sum(agent_invocations_by_status_total)", runs)
            time.sleep(1.5)

        failures = []
        for path in DASHBOARDS:
            dashboard = json.loads(path.read_text())
            for title, expr in queries(dashboard):
                body = prometheus.query(substitute(expr))
                if body.get("status") != "success":
                    failures.append(f"{path.name} / {title}: {body.get('error')}\n  {expr}")
                elif not any(_is_number(r["value"][1]) for r in body["data"]["result"]):
                    failures.append(f"{path.name} / {title}: no data\n  {expr}")
            for variable in dashboard["templating"]["list"]:
                match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
                assert match, variable["definition"]
                metric, label = match.groups()
                values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
                if not values.get("data"):
                    failures.append(f"{path.name} / variable {variable['name']}: no values")
        assert not failures, "\n".join(failures)

        # The alert rules evaluate against the real series without errors.
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) >= 4
        assert all(rule["health"] == "ok" for rule in rules), rules
        # The scrape was authorised, and cost = tokens x the configured price.
        assert prometheus.value('sum(agent_model_price_per_1k_tokens{model="offline"})') == 0.003
        assert prometheus.value('sum(ratelimit_rejections_total{scope="login"})') >= 1
        assert prometheus.value('sum(agent_tool_calls_total{tool="http_get", status="error"})') == 2
