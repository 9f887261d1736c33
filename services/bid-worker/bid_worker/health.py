"""Optional GET /health of a bid-worker on WORKER_HEALTH_PORT, for Docker and Kubernetes probes.

A worker has no API, so without this an orchestrator only sees that the process exists, not that it
still reaches RabbitMQ and PostgreSQL and that every shard loop still runs. Off unless
WORKER_HEALTH_PORT is set.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from auction_shared.health import HealthCheck, health_handler

from .settings import WorkerSettings
from .worker import BidWorker

WORKER = web.AppKey("worker", BidWorker)


def health_port(env: Mapping[str, str] | None = None) -> int | None:
    """The port from WORKER_HEALTH_PORT, or None when the endpoint is off."""
    return WorkerSettings.from_env(env).health_port


def _check(name: str) -> HealthCheck:
    async def check(app: web.Application) -> bool:
        return (await app[WORKER].health())[name]

    return check


async def _dead_letters(app: web.Application) -> dict[str, object]:
    """How many messages wait in the dead-letter queue (None while the broker is away). It never
    fails the probe: restarting a worker cures no dead letter."""
    return {"dead_letters": await app[WORKER].dead_letter_depth()}


async def start_health(worker: BidWorker, port: int) -> web.AppRunner:
    """Serve /health on HOST:port beside the consume loop; the caller cleans the runner up."""
    app = web.Application()
    app[WORKER] = worker
    checks = {name: _check(name) for name in ("postgres", "rabbitmq", "shard_loops")}
    app.router.add_get("/health", health_handler(checks, _dead_letters))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, worker.settings.host, port).start()
    return runner
