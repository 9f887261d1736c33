"""What the fault tests look at besides the public API: /health answers and the real database."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg

from tests.support.api import Api


async def health_says(api: Api, port: int, status: int, **dependencies: str) -> bool:
    """True once the service at `port` answers /health with `status` and those dependency states."""
    try:
        got, body = await api.health(port)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
    deps = body.get("dependencies", {}) if isinstance(body, dict) else {}
    return got == status and all(deps.get(k) == v for k, v in dependencies.items())


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """A read straight from the real database (never through a fault proxy)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
