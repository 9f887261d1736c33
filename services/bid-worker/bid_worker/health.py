"""Optional GET /health of a bid-worker on WORKER_HEALTH_PORT, for Docker and Kubernetes probes.

A worker has no API, so without this an orchestrator only sees that the process exists, not that it
still reaches RabbitMQ and PostgreSQL. Off unless WORKER_HEALTH_PORT is set.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from auction_shared.health import health_handler
from auction_shared.outages import broker_is_up, database_is_up

from .dead_letter_queue import measure_depth
from .settings import WorkerSettings
from .worker import BidWorker

WORKER = web.AppKey("worker", BidWorker)


def health_port(env: Mapping[str, str] | None = None) -> int | None:
    """The port from WORKER_HEALTH_PORT, or None when the endpoint is off."""
    return WorkerSettings.from_env(env).health_port


# The worker keeps its connection and pool to itself; the probe only looks at them.
async def _broker_up(app: web.Application) -> bool:
    connection = app[WORKER]._connection
    return connection is not None and broker_is_up(connection)


async def _database_up(app: web.Application) -> bool:
    worker = app[WORKER]
    pool = worker._pool
    return pool is not None and await database_is_up(pool, worker.settings.dependency_timeout)


async def _dead_letters(app: web.Application) -> dict[str, object]:
    """How many messages wait in the dead-letter queue (None while the broker is away). It never
    fails the probe: restarting a worker cures no dead letter."""
    worker = app[WORKER]
    connection = worker._connection
    if connection is None:
        return {"dead_letters": None}
    depth = await measure_depth(connection, worker.topology, worker.settings.dependency_timeout)
    return {"dead_letters": depth}


async def start_health(worker: BidWorker, port: int) -> web.AppRunner:
    """Serve /health on HOST:port beside the consume loop; the caller cleans the runner up."""
    app = web.Application()
    app[WORKER] = worker
    app.router.add_get(
        "/health", health_handler({"postgres": _database_up, "rabbitmq": _broker_up}, _dead_letters)
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, worker.settings.host, port).start()
    return runner
