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

.PHONY: help install run serve migrate superuser test test-services test-embedded lint format clean

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
	$(BIN)/python -m uvicorn config.asgi:application --host $(HOST) --port $(PORT) --no-access-log \
		--http config.server:HttpProtocol

test: test-services test-embedded ## Run the whole suite: PostgreSQL + Redis, then the embedded default

test-services: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CACHE_KEY_PREFIX=agents-test \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

test-embedded: install
	DATABASE_URL= REDIS_URL= REDIS_HOST= $(BIN)/python -m pytest -m "not services" $(PYTEST_ARGS)

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
