"""An Idempotency-Key is never released: a retry that was answered while the first request's publish
was still under way names a bid that really reaches the queue, even when that first publish fails.

The bids service here reaches RabbitMQ through a fault proxy; the test watches the real queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aio_pika
import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from auction_shared.broker import Topology, declare_events_exchange
from auction_shared.events import BidPlaced, EventType, decode
from tests.support.faultproxy import FaultProxy
from tests.support.inprocess import account
from tests.support.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def broker_proxy(settings) -> AsyncIterator[FaultProxy]:
    with FaultProxy("127.0.0.1", int(settings.amqp_url.rsplit(":", 1)[1].split("/")[0])) as proxy:
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
    world, settings, broker_proxy, faulty_bids
):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    resp = await world.offers.post(
        "/v1/offer", json={"title": "faults", "bid_price": 10}, headers=owner.headers
    )
    offer = await resp.json()
    connection = await aio_pika.connect(settings.amqp_url)  # straight to RabbitMQ, not through the proxy
    try:
        channel = await connection.channel()
        events = await declare_events_exchange(channel, Topology.from_settings(settings))
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(events, routing_key=EventType.BID_PLACED)

        key = uuid.uuid4().hex
        headers = {**alice.headers, "Idempotency-Key": key}
        body = {"offer_id": offer["id"], "bid_price": 12}

        async def post() -> tuple[int, dict]:
            resp = await faulty_bids.post("/v1/bid", json=body, headers=headers)
            return resp.status, await resp.json()

        broker_proxy.stall()
        first = asyncio.ensure_future(post())
        db = await asyncpg.connect(settings.database_url)
        try:

            async def claimed() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT true FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2",
                        uuid.UUID(alice.user_id),
                        key,
                    )
                )

            await wait_until(claimed, 20, "the first request to claim its key")
        finally:
            await db.close()
        # The retry arrives while the first publish waits for a confirm that will never come.
        retry = await asyncio.wait_for(post(), timeout=30)
        answers = [retry, await asyncio.wait_for(first, timeout=30)]
        # Whatever was held in the stalled connection is lost, as in a real cut.
        broker_proxy.cut()
        broker_proxy.restore()

        async def answered() -> tuple[int, dict] | None:
            status, bid = await post()
            return (status, bid) if status == 202 else None

        answers.append(await wait_until(answered, 60, "a retry to be answered 202 after the restore", 0.5))
        accepted = {bid["id"] for status, bid in answers if status == 202}
        # Every 202 names the same bid, and that bid reached the queue.
        assert len(accepted) == 1
        queued: set[str] = set()

        async def reached_the_queue() -> bool:
            while (message := await tap.get(no_ack=True, fail=False)) is not None:
                event = decode(message.body)
                if isinstance(event, BidPlaced):
                    queued.add(str(event.bid_id))
            return accepted <= queued

        await wait_until(reached_the_queue, 20, "every bid answered 202 to reach the queue")
    finally:
        broker_proxy.restore()
        await connection.close()
