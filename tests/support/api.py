"""A small client of the public API for tests that drive a running gateway."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Account:
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/")

    async def account(self, prefix: str = "user") -> Account:
        creds = {"username": f"{prefix}_{uuid.uuid4().hex[:10]}", "password": "pw-" + uuid.uuid4().hex[:6]}
        async with self.session.post(f"{self.base}/v1/signup", json=creds) as resp:
            assert resp.status == 201, await resp.text()
        async with self.session.post(f"{self.base}/v1/login", json=creds) as resp:
            assert resp.status == 200, await resp.text()
            return Account(creds["username"], (await resp.json())["token"])

    async def accounts(self, n: int, prefix: str = "user") -> list[Account]:
        return list(await asyncio.gather(*(self.account(prefix) for _ in range(n))))

    async def create_offer(self, owner: Account, **body: Any) -> dict[str, Any]:
        body.setdefault("title", "lot " + uuid.uuid4().hex[:6])
        body.setdefault("bid_price", 1)
        async with self.session.post(f"{self.base}/v1/offer", json=body, headers=owner.headers) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    async def bid(self, who: Account, offer_id: str, price: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            f"{self.base}/v1/bid", json={"offer_id": offer_id, "bid_price": price},
            headers={**who.headers, **headers},
        ) as resp:
            return resp.status, await resp.json()

    async def get(self, who: Account, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.base}{path}", headers=who.headers) as resp:
            return resp.status, await resp.json()

    async def put(self, who: Account, path: str) -> tuple[int, Any]:
        async with self.session.put(f"{self.base}{path}", headers=who.headers) as resp:
            return resp.status, await resp.json()


async def place_concurrently(
    api: Api, plan: list[tuple[Account, str, Any]], concurrency: int = 50
) -> list[dict[str, Any]]:
    """Send every (bidder, offer_id, price) with `concurrency` requests in flight; return the 202 bodies."""
    queue: asyncio.Queue[tuple[Account, str, Any]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    accepted: list[dict[str, Any]] = []

    async def sender() -> None:
        while not queue.empty():
            who, offer_id, price = queue.get_nowait()
            status, body = await api.bid(who, offer_id, price)
            assert status == 202, (status, body)
            accepted.append(body)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return accepted
