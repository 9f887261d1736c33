"""A small client of the public API for tests that drive a running gateway; every call is bounded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

# Any single request must answer within this, whatever is down or loaded: a hang fails the test.
REQUEST_DEADLINE = 15.0


@dataclass(frozen=True)
class Account:
    username: str
    token: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """The public API at `base_url` (a gateway) through one pooled session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/")

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON body) of one request; `path` is under the base unless it is a full URL."""
        url = path if path.startswith("http") else self.base + path
        timeout = aiohttp.ClientTimeout(total=REQUEST_DEADLINE)
        async with self.session.request(method, url, timeout=timeout, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def account(self, prefix: str = "user") -> Account:
        """Sign up and log in a fresh user."""
        creds = {"username": f"{prefix}_{uuid.uuid4().hex[:10]}", "password": "pw-" + uuid.uuid4().hex[:8]}
        status, body = await self.call("POST", "/v1/signup", json=creds)
        for _ in range(60):  # sign-ups hash a few at a time: a 503 says retry shortly, as a client would
            if status != 503:
                break
            await asyncio.sleep(0.5)
            status, body = await self.call("POST", "/v1/signup", json=creds)
        assert status == 201, body
        user_id = body["id"]
        status, body = await self.call("POST", "/v1/login", json=creds)
        assert status == 200, body
        return Account(creds["username"], body["token"], user_id)

    async def accounts(self, n: int, prefix: str = "user") -> list[Account]:
        return list(await asyncio.gather(*(self.account(prefix) for _ in range(n))))

    async def create_offer(self, owner: Account, **body: Any) -> dict[str, Any]:
        """A new offer of `owner` (title and a start price of 10 unless given); fails unless 201."""
        body.setdefault("title", "lot " + uuid.uuid4().hex[:6])
        body.setdefault("bid_price", 10)
        status, offer = await self.call("POST", "/v1/offer", json=body, headers=owner.headers)
        assert status == 201, offer
        return offer

    async def bid(
        self, who: Account, offer_id: str, price: Any, max_price: Any = None, **headers: str
    ) -> tuple[int, Any]:
        body = {"offer_id": offer_id, "bid_price": price}
        if max_price is not None:
            body["max_price"] = max_price
        return await self.call("POST", "/v1/bid", json=body, headers={**who.headers, **headers})

    async def get(self, who: Account, path: str) -> tuple[int, Any]:
        return await self.call("GET", path, headers=who.headers)

    async def put(self, who: Account, path: str) -> tuple[int, Any]:
        return await self.call("PUT", path, headers=who.headers)

    async def health(self, port: int) -> tuple[int, Any]:
        """/health of the service listening on `port` of this machine (not through the gateway)."""
        return await self.call("GET", f"http://127.0.0.1:{port}/health")


async def place_concurrently(
    api: Api, plan: Sequence[tuple[Account, str, Any] | tuple[Account, str, Any, Any]], concurrency: int = 50
) -> list[dict[str, Any]]:
    """Send every (bidder, offer_id, price[, max_price]) with `concurrency` requests in flight; return
    the 202 bodies."""
    queue: asyncio.Queue[tuple[Account, str, Any] | tuple[Account, str, Any, Any]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    accepted: list[dict[str, Any]] = []

    async def sender() -> None:
        while not queue.empty():
            who, offer_id, price, *proxy = queue.get_nowait()
            status, body = await api.bid(who, offer_id, price, *proxy)
            assert status == 202, (status, body)
            accepted.append(body)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return accepted
