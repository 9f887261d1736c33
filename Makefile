# The front door: `make run` starts the stack, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := shared:services/auth:services/offers:services/bids:services/gateway:services/bid-worker
IMAGE_TARGETS := migrate auth offers bids gateway bid-worker
IMAGE_TAG ?= 0.1.0
REGISTRY ?=

.PHONY: run test bench bench-quick migrate lint venv clean images deploy-check

# Two stamps: `make run` needs only the services' packages, the tests and benchmarks need more.
$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.dev

run: $(VENV)/.runtime ## start every service against local PostgreSQL and RabbitMQ
	-@rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_consistent_hash_exchange >/dev/null 2>&1
	$(PY) deploy/run_local.py

migrate: $(VENV)/.runtime ## create the database if missing and apply migrations
	$(PY) -m auction_shared.migrate

test: venv ## the whole suite against this machine's real PostgreSQL and RabbitMQ
	$(PY) -m pytest

bench: venv ## measure the stack against bare baselines (minutes): BENCHMARKS.md + bench/latency-percentiles.png
	$(PY) -m bench

bench-quick: venv ## the same in seconds (CI runs it): bench/results/quick/BENCHMARKS.md
	BENCH_QUICK=1 $(PY) -m bench

images: ## one image per Dockerfile target, auction-<target>:$(IMAGE_TAG) (needs Docker; REGISTRY=host/path/)
	for t in $(IMAGE_TARGETS); do docker build --target $$t -t $(REGISTRY)auction-$$t:$(IMAGE_TAG) . || exit 1; done

deploy-check: venv ## compose, Dockerfile and k8s manifests against their schemas and the code (no Docker)
	$(PY) -m pytest tests/deploy -q

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
