"""RabbitMQ's management HTTP API, for tests that look at (or cut) what the broker holds."""

from __future__ import annotations

import os
from urllib.parse import quote

import aiohttp

MANAGEMENT_API = os.environ.get("TEST_RABBITMQ_API", "http://127.0.0.1:15672/api")
MANAGEMENT_AUTH = {
    "Authorization": aiohttp.encode_basic_auth(
        os.environ.get("TEST_RABBITMQ_USER", "guest"), os.environ.get("TEST_RABBITMQ_PASSWORD", "guest")
    )
}


def management_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers=MANAGEMENT_AUTH, timeout=aiohttp.ClientTimeout(total=15))


async def bindings_from(mgmt: aiohttp.ClientSession, exchange: str) -> list[dict[str, str]]:
    """Every binding whose source is `exchange` (on the default vhost)."""
    async with mgmt.get(f"{MANAGEMENT_API}/exchanges/%2F/{quote(exchange, safe='')}/bindings/source") as resp:
        assert resp.status == 200, await resp.text()
        rows: list[dict[str, str]] = await resp.json()
    return rows
