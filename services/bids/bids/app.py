"""Builds the bids service's aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from auction_shared.broker import broker, declare_bid_pipeline
from auction_shared.config import Settings
from auction_shared.db import DB_POOL, database
from auction_shared.web import base_app

from . import store
from .intake import OFFER_CACHE
from .offer_cache import OfferCache
from .routes import setup_routes


async def _offer_cache(app: web.Application) -> AsyncIterator[None]:
    app[OFFER_CACHE] = OfferCache(app[DB_POOL])
    yield


log = logging.getLogger(__name__)
# How often each replica deletes Idempotency-Keys past their retention (any replica may; all is fine).
FORGET_KEYS_EVERY_SECONDS = 600.0


async def _forget_expired_keys(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                gone = await store.forget_expired_requests(app[DB_POOL])
                if gone:
                    log.info("forgot %d expired Idempotency-Keys", gone)
            except Exception:  # the database may be away; the next round tries again
                log.warning("could not forget expired Idempotency-Keys", exc_info=True)
            await asyncio.sleep(FORGET_KEYS_EVERY_SECONDS)

    task = asyncio.create_task(loop(), name="forget-expired-keys")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app.cleanup_ctx.append(database(settings, min_size=4, max_size=20))
    # The bids service declares the pipeline too, so a bid is never published before its queues exist.
    app.cleanup_ctx.append(broker(settings, declare=declare_bid_pipeline))
    app.cleanup_ctx.append(_offer_cache)
    app.cleanup_ctx.append(_forget_expired_keys)
    setup_routes(app)
    return app
