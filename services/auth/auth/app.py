"""Builds the auth service's aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from auction_shared.config import Settings
from auction_shared.db import DB_POOL, database
from auction_shared.housekeeping import periodically
from auction_shared.web import base_app

from .handlers import HASHER, THROTTLE
from .passwords import PasswordHasher
from .ratelimit import LoginThrottle
from .routes import setup_routes

THROTTLE_WINDOW_SECONDS = 60.0


async def _hasher(app: web.Application) -> AsyncIterator[None]:
    yield
    app[HASHER].close()


async def _forget_ended_attempts(app: web.Application) -> None:
    """Keep login_attempts to the windows that still count."""
    await app[THROTTLE].forget_ended(app[DB_POOL])


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app[HASHER] = PasswordHasher(settings.bcrypt_rounds, settings.signup_hash_slots)
    app[THROTTLE] = LoginThrottle(settings.login_attempts_per_minute, THROTTLE_WINDOW_SECONDS)
    app.cleanup_ctx.append(_hasher)
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(
        periodically(_forget_ended_attempts, THROTTLE_WINDOW_SECONDS, "delete ended login windows")
    )
    setup_routes(app)
    return app
