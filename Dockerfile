# One image recipe for every process of the auction; pick one with a target:
#   docker build --target gateway -t auction-gateway .
# Targets: auth, offers, bids, gateway, bid-worker, migrate (docker compose builds each).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the pinned runtime dependencies in a virtualenv -------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Wheels only: every pin ships manylinux wheels for amd64 and arm64, so no compiler is ever needed,
# and a pin without one fails here instead of pulling a build toolchain in.
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# --- runtime: the venv and the code, nothing else ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it without a name lookup.
RUN groupadd --system --gid 10001 auction \
    && useradd --system --uid 10001 --gid auction --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin auction
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
# migrate.py finds its SQL at <repo>/deploy/migrations, two levels above shared/auction_shared.
COPY deploy/migrations/ deploy/migrations/
# The project's own packages, installed editable as `make` does (no dependency is fetched here: the
# builder's venv has every pin), so the code stays at /app beside deploy/migrations.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-cache-dir \
    -e /app/shared -e /app/services/auth -e /app/services/offers -e /app/services/bids \
    -e /app/services/gateway -e /app/services/bid-worker
# Compiled now, as root: the code is read-only for the service user at run time.
RUN python -m compileall -q /app/shared /app/services
USER 10001:10001

# --- one target per process ------------------------------------------------------------------------
FROM runtime AS auth
EXPOSE 8001
CMD ["python", "-m", "auth"]

FROM runtime AS offers
EXPOSE 8002
CMD ["python", "-m", "offers"]

FROM runtime AS bids
EXPOSE 8003
CMD ["python", "-m", "bids"]

FROM runtime AS gateway
EXPOSE 8000
CMD ["python", "-m", "gateway"]

FROM runtime AS bid-worker
# Only a probe port: the worker has no API.
ENV WORKER_HEALTH_PORT=8080
EXPOSE 8080
CMD ["python", "-m", "bid_worker"]

FROM runtime AS migrate
CMD ["python", "-m", "auction_shared.migrate"]
