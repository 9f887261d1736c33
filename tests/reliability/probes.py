"""What the fault tests do to a running stack: public API calls, health probes, bounded waits."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

# Any single request of a fault test must answer within this, whatever is down: a hang fails it.
REQUEST_DEADLINE = 15.0


@dataclass(frozen=True)
class Account:
    username: str
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Client:
    """The public API through the gateway, one pooled session; every call bounded."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/")

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.base + path
        timeout = aiohttp.ClientTimeout(total=REQUEST_DEADLINE)
        async with self.session.request(method, url, timeout=timeout, **kwargs) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body

    async def account(self, prefix: str = "rel") -> Account:
        creds = {"username": f"{prefix}_{uuid.uuid4().hex[:10]}", "password": "pw-" + uuid.uuid4().hex[:8]}
        status, body = await self.call("POST", "/v1/signup", json=creds)
        assert status == 201, body
        user_id = body["id"]
        status, body = await self.call("POST", "/v1/login", json=creds)
        assert status == 200, body
        return Account(creds["username"], user_id, body["token"])

    async def create_offer(self, owner: Account, price: float = 10) -> tuple[int, Any]:
        body = {"title": "lot " + uuid.uuid4().hex[:6], "bid_price": price}
        return await self.call("POST", "/v1/offer", json=body, headers=owner.headers)

    async def bid(self, who: Account, offer_id: str, price: Any) -> tuple[int, Any]:
        body = {"offer_id": offer_id, "bid_price": price}
        return await self.call("POST", "/v1/bid", json=body, headers=who.headers)

    async def health(self, port: int) -> tuple[int, Any]:
        return await self.call("GET", f"http://127.0.0.1:{port}/health")


async def wait_until(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float, what: str,
    interval: float = 0.1,
) -> Any:
    """Poll `condition` until it returns something true (and return that), or fail saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def health_says(client: Client, port: int, status: int, **dependencies: str) -> bool:
    """True once the service at `port` answers /health with `status` and those dependency states."""
    try:
        got, body = await client.health(port)
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
