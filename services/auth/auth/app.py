"""Builds the auth service's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from auction_shared.config import Settings
from auction_shared.db import database
from auction_shared.web import base_app

from .handlers import HASHER, THROTTLE
from .passwords import PasswordHasher
from .ratelimit import LoginThrottle
from .routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app[HASHER] = PasswordHasher(settings.bcrypt_rounds)
    app[THROTTLE] = LoginThrottle(settings.login_attempts_per_minute, window_seconds=60.0)
    app.cleanup_ctx.append(database(settings))
    setup_routes(app)
    return app
