"""An Idempotency-Key is never released: a retry that was answered while the first request's publish
was still under way names a bid that really reaches the queue, even when that first publish fails.

The bids service here reaches RabbitMQ through a fault proxy; the test watches the real queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.support.faultproxy import FaultProxy
from tests.support.inprocess import accounts, new_offer
from tests.support.pipeline import BidTap
from tests.support.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def broker_proxy(settings) -> Iterator[FaultProxy]:
    broker = urlsplit(settings.amqp_url)
    with FaultProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as proxy:
        yield proxy


@pytest_asyncio.fixture(loop_scope="module")
async def faulty_bids(settings, broker_proxy) -> AsyncIterator[TestClient]:
    """A bids service whose broker connection goes through the proxy and gives up after 2 s."""
    from bids.app import create_app

    own = replace(settings, amqp_url=broker_proxy.url_for(settings.amqp_url), dependency_timeout=2.0)
    client = TestClient(TestServer(create_app(own), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_a_replay_during_a_publish_that_fails_still_names_a_queued_bid(
    world, settings, db, broker_proxy, faulty_bids
):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    key = uuid.uuid4().hex
    headers = {**alice.headers, "Idempotency-Key": key}
    body = {"offer_id": offer["id"], "bid_price": 12}

    async def post() -> tuple[int, dict]:
        resp = await faulty_bids.post("/v1/bid", json=body, headers=headers)
        return resp.status, await resp.json()

    async def claimed() -> bool:
        return bool(
            await db.fetchval(
                "SELECT true FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2",
                uuid.UUID(alice.user_id),
                key,
            )
        )

    # The tap reaches RabbitMQ straight, not through the proxy.
    async with BidTap(settings) as tap:
        try:
            broker_proxy.stall()
            first = asyncio.ensure_future(post())
            await wait_until(claimed, 20, "the first request to claim its key")
            # The retry arrives while the first publish waits for a confirm that will never come.
            answers = [await asyncio.wait_for(post(), timeout=30), await asyncio.wait_for(first, timeout=30)]
            # Whatever the stalled connection held is lost, as in a real cut.
            broker_proxy.cut()
        finally:
            broker_proxy.restore()

        async def answered() -> tuple[int, dict] | None:
            status, bid = await post()
            return (status, bid) if status == 202 else None

        answers.append(await wait_until(answered, 60, "a retry to be answered 202 after the restore", 0.5))
        # Every 202 names one and the same bid, and that bid reached the queue.
        (accepted,) = {bid["id"] for status, bid in answers if status == 202}
        await tap.bids_until(accepted)
