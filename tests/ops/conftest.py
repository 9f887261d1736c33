"""Fixtures of the operations tests: a stack whose processes serve metrics, on broker names of its own."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auction_shared.config import Settings
from tests.support.api import Account, Api
from tests.support.cleanup import delete_broker_names
from tests.support.processes import Stack
from tests.support.waiting import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def own_settings(settings: Settings) -> AsyncIterator[Settings]:
    """The run's database, broker names of this test's own: counts must not see other tests' messages."""
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}.{uuid.uuid4().hex[:8]}")
    yield own
    await delete_broker_names(own)


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def scrape(port: int) -> Samples:
    """Every sample of a process's /metrics, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape_text(port))
        for s in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def judged_bid(
    api: Api, bidder: Account, offer_id: str, price: float, **headers: str
) -> dict[str, Any]:
    """Place a bid (202) and wait until the worker has judged it; return it as its bidder sees it."""
    status, bid = await api.bid(bidder, offer_id, price, **headers)
    assert status == 202, bid

    async def judged() -> dict[str, Any] | None:
        status, body = await api.get(bidder, f"/v1/bid/{bid['id']}")
        # Intake's pending row reads 200 at once: judged means a status the worker gave it.
        return body if status == 200 and body["status"] != "pending" else None

    found: dict[str, Any] = await wait_until(judged, 30, f"bid {bid['id']} judged by the worker")
    return found


@dataclass
class Market:
    http: aiohttp.ClientSession
    api: Api
    seller: Account
    bidder: Account
    offer: dict[str, Any]


@asynccontextmanager
async def market(stack: Stack, worker: str) -> AsyncIterator[Market]:
    """`stack` started with one bid-worker, then a seller, a bidder and one offer (start price 10);
    the stack stops afterwards."""
    try:
        stack.start_services()
        stack.start_worker(worker)
        async with aiohttp.ClientSession() as http:
            api = Api(http, stack.gateway_url)
            seller, bidder = await api.accounts(2)
            yield Market(http, api, seller, bidder, await api.create_offer(seller, bid_price=10))
    finally:
        stack.stop()
