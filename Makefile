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

.PHONY: help install run serve migrate superuser test test-services test-embedded lint format clean eval-gate worker

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

run: migrate ## Serve http://127.0.0.1:8000 on the embedded default (ASGI, streams)
	@echo "Serving http://$(HOST):$(PORT)  (admin: /admin/, API docs: /api/docs, chat: /chat/)"
	$(BIN)/python -m uvicorn config.asgi:application --host $(HOST) --port $(PORT) --no-access-log

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

worker: install ## Run a Celery worker for evaluation jobs (needs CELERY_BROKER_URL or REDIS_URL)
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
