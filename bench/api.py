"""The few public API calls the benchmark needs: accounts, offers. Failures raise with the answer."""

from __future__ import annotations

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


class ApiError(RuntimeError):
    pass


class PublicApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/")

    async def _call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            if resp.status != expect:
                raise ApiError(f"{method} {path} -> {resp.status}: {await resp.text()}")
            return await resp.json()

    async def account(self, prefix: str) -> Account:
        creds = {"username": f"{prefix}_{uuid.uuid4().hex[:10]}", "password": "pw-" + uuid.uuid4().hex[:8]}
        await self._call("POST", "/v1/signup", 201, json=creds)
        answer = await self._call("POST", "/v1/login", 200, json=creds)
        return Account(creds["username"], answer["token"])

    async def create_offer(self, owner: Account, title: str, price: float = 1.0) -> dict[str, Any]:
        return await self._call(
            "POST", "/v1/offer", 201, json={"title": title, "bid_price": price}, headers=owner.headers
        )
