"""`python -m bid_worker` runs a bid-worker until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from auction_shared.config import ConfigError, Settings
from auction_shared.observability import observe
from auction_shared.web import install_uvloop, settle_garbage_collector

from .health import start_health
from .settings import WorkerSettings
from .worker import BidWorker

log = logging.getLogger("bid_worker")


async def main() -> None:
    settings = Settings.from_env()
    observe("bid-worker", settings)
    worker_settings = WorkerSettings.from_env()  # read first: a bad value fails before any shard is consumed
    worker = BidWorker(settings, worker_settings)
    port = worker_settings.health_port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    settle_garbage_collector()
    health = await start_health(worker, port) if port is not None else None
    log.info("bid-worker %s consuming %d shards", worker.worker.worker_id, settings.bid_shards)
    # A shard loop that cannot be restarted ends the process (non-zero): its orchestrator restarts
    # it, instead of a worker that stays the active consumer of a shard it no longer processes.
    stopped, failed = asyncio.create_task(stop.wait()), asyncio.create_task(worker.failed.wait())
    await asyncio.wait([stopped, failed], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    failed.cancel()
    if health is not None:
        await health.cleanup()
    await worker.stop()
    if worker.failed.is_set():
        sys.exit(1)


if __name__ == "__main__":
    try:
        install_uvloop()
        asyncio.run(main())
    except ConfigError as exc:
        print(f"bid-worker: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
