"""Builds the gateway's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from auction_shared.config import Settings
from auction_shared.web import base_app

from .cors import setup_cors
from .offer_feed import close_watchers, live_updates
from .proxy import upstreams
from .routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings, has_database=False)
    setup_cors(app, settings.cors_origins)
    app.cleanup_ctx.append(upstreams(settings))
    app.cleanup_ctx.append(live_updates(settings))
    app.on_shutdown.append(close_watchers)
    setup_routes(app)
    return app
