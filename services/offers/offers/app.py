"""Builds the offers service's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from auction_shared.broker import broker, declare_events_exchange
from auction_shared.config import Settings
from auction_shared.db import database
from auction_shared.outbox import outbox_relay
from auction_shared.web import base_app

from .routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(broker(settings, declare=declare_events_exchange))
    app.cleanup_ctx.append(outbox_relay())
    setup_routes(app)
    return app
