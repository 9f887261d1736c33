"""The asyncpg pool as an aiohttp cleanup context, opened with retries so start order does not matter."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from .config import Settings
from .outages import DATABASE_REFUSED
from .retry import Backoff, retry

log = logging.getLogger(__name__)

DB_POOL = web.AppKey("db_pool", asyncpg.Pool)


def describe(url: str) -> str:
    """host:port/db of a URL, without the password, for log lines and errors."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


async def create_pool(
    settings: Settings,
    *,
    min_size: int = 2,
    max_size: int = 10,
    attempts: int = 30,
    server_settings: dict[str, str] | None = None,
    reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> asyncpg.Pool:
    return await retry(
        lambda: asyncpg.create_pool(
            settings.database_url,
            min_size=min_size,
            max_size=max_size,
            command_timeout=settings.dependency_timeout,
            timeout=settings.dependency_timeout,
            server_settings=server_settings,
            reset=reset,
        ),
        on=DATABASE_REFUSED,
        backoff=Backoff(0.2, 2.0),
        attempts=attempts,
        waiting=lambda exc, _: log.warning(
            "waiting for PostgreSQL at %s (%s)", describe(settings.database_url), exc
        ),
    )


def database(
    settings: Settings, *, min_size: int = 2, max_size: int = 10
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(settings, min_size=min_size, max_size=max_size)
        app[DB_POOL] = pool
        yield
        await pool.close()

    return ctx
