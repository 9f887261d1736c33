"""auth, offers, bids and a gateway in front of them, all on test servers inside the test's process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from auction_shared.config import Settings
from tests.support.api import Account


@dataclass
class World:
    """One client on the gateway and one straight on each service (to prove they check tokens too)."""

    gateway: TestClient
    services: dict[str, TestClient]

    @property
    def auth(self) -> TestClient:
        return self.services["auth"]

    @property
    def offers(self) -> TestClient:
        return self.services["offers"]

    @property
    def bids(self) -> TestClient:
        return self.services["bids"]


def service_factories() -> dict[str, Callable[[Settings], web.Application]]:
    from auth.app import create_app as auth_app
    from bids.app import create_app as bids_app
    from offers.app import create_app as offers_app

    return {"auth": auth_app, "offers": offers_app, "bids": bids_app}


def url_of(client: TestClient) -> str:
    return f"http://127.0.0.1:{client.port}"


@asynccontextmanager
async def running_world(settings: Settings, **gateway_overrides: str) -> AsyncIterator[World]:
    """Start the three services, then a gateway routed to them (override e.g. `offers_url`)."""
    from gateway.app import create_app as gateway_app

    started: list[TestClient] = []
    try:
        services = {}
        for name, factory in service_factories().items():
            client = TestClient(TestServer(factory(settings), host="127.0.0.1"))
            await client.start_server()
            started.append(client)
            services[name] = client
        routed = replace(
            settings,
            auth_url=url_of(services["auth"]),
            offers_url=url_of(services["offers"]),
            bids_url=url_of(services["bids"]),
        )
        gateway = TestClient(TestServer(gateway_app(replace(routed, **gateway_overrides)), host="127.0.0.1"))
        await gateway.start_server()
        started.append(gateway)
        yield World(gateway, services)
    finally:
        for client in reversed(started):
            await client.close()


async def account(client: TestClient, prefix: str = "user") -> Account:
    """Sign up and log in a fresh user through `client` (the gateway or the auth service)."""
    credentials = {"username": f"{prefix}_{uuid.uuid4().hex[:12]}", "password": "pw-" + uuid.uuid4().hex[:8]}
    resp = await client.post("/v1/signup", json=credentials)
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    resp = await client.post("/v1/login", json=credentials)
    assert resp.status == 200, await resp.text()
    return Account(credentials["username"], (await resp.json())["token"], user_id)


async def accounts(client: TestClient, *prefixes: str) -> list[Account]:
    """One fresh user per prefix, in order."""
    return [await account(client, prefix) for prefix in prefixes]


async def new_offer(world: World, owner: Account, **body: Any) -> dict[str, Any]:
    """An offer of `owner` through the offers service (title and a start price of 10 unless given)."""
    body.setdefault("title", "lot " + uuid.uuid4().hex[:6])
    body.setdefault("bid_price", 10)
    resp = await world.offers.post("/v1/offer", json=body, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    offer: dict[str, Any] = await resp.json()
    return offer


async def place_bid(
    world: World, who: Account, offer_id: str, price: Any, key: str | None = None, **extra: Any
) -> tuple[int, Any, Mapping[str, str]]:
    """(status, body, headers) of a POST /v1/bid to the bids service, with an Idempotency-Key if given."""
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    body = {"offer_id": offer_id, "bid_price": price, **extra}
    resp = await world.bids.post("/v1/bid", json=body, headers=headers)
    return resp.status, await resp.json(), resp.headers
