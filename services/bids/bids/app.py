"""Builds the bids service's aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from auction_shared.broker import broker, declare_bid_pipeline
from auction_shared.config import Settings
from auction_shared.db import DB_POOL, database
from auction_shared.web import base_app

from .handlers import OFFER_CACHE
from .offer_cache import OfferCache
from .routes import setup_routes


async def _offer_cache(app: web.Application) -> AsyncIterator[None]:
    app[OFFER_CACHE] = OfferCache(app[DB_POOL])
    yield


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app.cleanup_ctx.append(database(settings, min_size=4, max_size=20))
    # The bids service declares the pipeline too, so a bid is never published before its queues exist.
    app.cleanup_ctx.append(broker(settings, declare=declare_bid_pipeline))
    app.cleanup_ctx.append(_offer_cache)
    setup_routes(app)
    return app
