"""Builds the auth service's aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from auction_shared.config import Settings
from auction_shared.db import DB_POOL, database
from auction_shared.web import base_app

from .handlers import HASHER, THROTTLE
from .passwords import PasswordHasher
from .ratelimit import LoginThrottle
from .routes import setup_routes

log = logging.getLogger(__name__)

THROTTLE_WINDOW_SECONDS = 60.0


async def _hasher(app: web.Application) -> AsyncIterator[None]:
    yield
    app[HASHER].close()


async def _forget_ended_attempts(app: web.Application) -> AsyncIterator[None]:
    """Keep login_attempts to the windows that still count (any replica may do it)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(THROTTLE_WINDOW_SECONDS)
            try:
                await app[THROTTLE].forget_ended(app[DB_POOL])
            except Exception as exc:  # the database is down: next time
                log.warning("could not delete ended login windows: %r", exc)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    settings.require_jwt_secret()
    app = base_app(settings)
    app[HASHER] = PasswordHasher(settings.bcrypt_rounds, settings.signup_hash_slots)
    app[THROTTLE] = LoginThrottle(settings.login_attempts_per_minute, THROTTLE_WINDOW_SECONDS)
    app.cleanup_ctx.append(_hasher)
    app.cleanup_ctx.append(database(settings))
    app.cleanup_ctx.append(_forget_ended_attempts)
    setup_routes(app)
    return app
