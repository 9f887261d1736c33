# The front door: `make run` starts the stack, `make test` runs every test, `make check` is the gate.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The project's own packages: shared first (every service depends on it), installed editable.
PACKAGES := shared services/auth services/offers services/bids services/gateway services/bid-worker
IMAGE_TARGETS := migrate auth offers bids gateway bid-worker
IMAGE_TAG ?= 0.1.0
REGISTRY ?=

.PHONY: all check lint format typecheck unit run test bench bench-quick migrate venv clean images deploy-check env dead-letters replay-dead-letters

all: check test

# Two stamps: `make run` needs only the services' packages, the tests and benchmarks need more.
$(VENV)/.runtime: requirements.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  || { echo "needs Python 3.11 or newer as $(PYTHON) (or set PYTHON=...): apt-get install -y python3"; exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null \
	  || { echo "$(PYTHON) cannot make a venv: apt-get install -y python3-venv"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --no-build-isolation --no-deps --config-settings editable_mode=compat $(addprefix -e ,$(PACKAGES))
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.dev

run: $(VENV)/.runtime ## start every service against local PostgreSQL and RabbitMQ
	-@rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_prometheus rabbitmq_consistent_hash_exchange >/dev/null 2>&1
	$(PY) deploy/run_local.py

env: ## write .env for docker compose with new random secrets (never overwrites one)
	$(PYTHON) deploy/make_env.py

migrate: $(VENV)/.runtime ## create the database if missing and apply migrations
	$(PY) -m auction_shared.migrate

dead-letters: $(VENV)/.runtime ## list the dead-letter queue (AMQP_URL, AMQP_PREFIX): one JSON line per message, with why it died
	$(PY) -m bid_worker.dead_letter_queue list

replay-dead-letters: $(VENV)/.runtime ## publish dead-lettered bids back to their shards (IDS="id ..." for some only)
	$(PY) -m bid_worker.dead_letter_queue replay $(IDS)

check: lint typecheck unit ## the gate: lint, format, strict types, and the tests that need no server

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: venv
	$(PY) -m mypy

unit: venv ## the tests that need no PostgreSQL, RabbitMQ or running stack
	$(PY) -m pytest -q -m unit

test: venv ## the whole suite against this machine's real PostgreSQL and RabbitMQ
	.ci/test-tools
	$(PY) -m pytest

# The fan-out shares 5,000 sockets among 10 users (500 each): above the per-user cap a real
# deployment wants, so the bench's gateway gets a cap of its own.
bench: venv ## measure the stack against bare baselines (minutes): BENCHMARKS.md + bench/latency-percentiles.png
	WS_MAX_SOCKETS_PER_USER=$${WS_MAX_SOCKETS_PER_USER:-1000} $(PY) -m bench

bench-quick: venv ## the same in seconds (CI runs it): bench/results/quick/BENCHMARKS.md
	BENCH_QUICK=1 $(PY) -m bench

images: ## one image per Dockerfile target, auction-<target>:$(IMAGE_TAG) (needs Docker; REGISTRY=host/path/)
	for t in $(IMAGE_TARGETS); do docker build --target $$t -t $(REGISTRY)auction-$$t:$(IMAGE_TAG) . || exit 1; done

deploy-check: venv ## compose, Dockerfile and k8s manifests against their schemas and the code (no Docker)
	$(PY) -m pytest tests/deploy -q

clean:
	rm -rf $(VENV) .pytest_cache
