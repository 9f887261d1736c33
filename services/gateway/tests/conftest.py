"""Fixtures of the gateway's WebSocket tests: a gateway app in the test's process, in front of a real
offers app, started once its feed is subscribed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from auction_shared.config import Settings
from gateway.app import create_app
from gateway.offer_feed import FEED
from tests.support.waiting import wait_until


@pytest.fixture
def start_gateway(aiohttp_client, offers_client: TestClient, settings: Settings):
    """A gateway app (settings overridable) in front of the in-process offers app, once its feed is up."""

    async def start(**overrides: object) -> TestClient:
        routed = replace(settings, offers_url=str(offers_client.make_url("")).rstrip("/"), **overrides)
        client = await aiohttp_client(create_app(routed))
        await wait_until(client.server.app[FEED].is_up, 20.0, "the gateway's offer feed to subscribe")
        return client

    return start


@pytest.fixture
async def gateway(start_gateway) -> TestClient:
    return await start_gateway()
