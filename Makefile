# The front door: `make run` starts the stack, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := shared:services/auth:services/offers:services/bids:services/gateway:services/bid-worker

.PHONY: run test bench migrate lint venv clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv ## start every service against local PostgreSQL and RabbitMQ
	-@rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_consistent_hash_exchange >/dev/null 2>&1
	$(PY) deploy/run_local.py

migrate: venv ## create the database if missing and apply migrations
	$(PY) -m auction_shared.migrate

test: venv ## the whole suite against this machine's real PostgreSQL and RabbitMQ
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check . || true

clean:
	rm -rf $(VENV) .pytest_cache
