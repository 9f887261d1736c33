"""Builds the bids service's aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from auction_shared.broker import PUBLISHER, broker, declare_bid_pipeline
from auction_shared.config import Settings
from auction_shared.db import DB_POOL, create_pool, database
from auction_shared.housekeeping import periodically
from auction_shared.web import base_app

from . import store
from .batching import BidBatches
from .intake import BATCHES, OFFER_CACHE, PENDING
from .offer_cache import OfferCache
from .pending import HeldConnection, PendingRecords, keep_session
from .routes import setup_routes


def _intake_parts(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[OFFER_CACHE] = OfferCache(app[DB_POOL])
        # Pending rows commit without waiting for their WAL flush (pending.py says why that is safe).
        pending_pool = await create_pool(
            settings,
            min_size=1,
            max_size=2,
            server_settings={"synchronous_commit": "off"},
            reset=keep_session,
        )
        held = HeldConnection(pending_pool)
        app[PENDING] = PendingRecords(held)
        app[BATCHES] = BidBatches(app[PUBLISHER])
        yield
        await app[BATCHES].close()
        await app[PENDING].close()
        await held.close()
        await pending_pool.close()

    return ctx


log = logging.getLogger(__name__)
# How often each replica deletes Idempotency-Keys past their retention (any replica may; all is fine).
FORGET_KEYS_EVERY_SECONDS = 600.0


async def _forget_expired_keys(app: web.Application) -> None:
    gone = await store.forget_expired_requests(app[DB_POOL])
    if gone:
        log.info("forgot %d expired Idempotency-Keys", gone)


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app.cleanup_ctx.append(database(settings, min_size=4, max_size=20))
    # The bids service declares the pipeline too, so a bid is never published before its queues exist.
    app.cleanup_ctx.append(broker(settings, declare=declare_bid_pipeline))
    app.cleanup_ctx.append(_intake_parts(settings))
    app.cleanup_ctx.append(
        periodically(_forget_expired_keys, FORGET_KEYS_EVERY_SECONDS, "forget expired Idempotency-Keys")
    )
    setup_routes(app)
    return app
