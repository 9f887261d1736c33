"""After a create commits, `offer.created` really reaches RabbitMQ with the offer as its data."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from auction_shared.broker import Topology, declare_events_exchange
from auction_shared.events import Contract, EventType, OfferCreated, decode
from tests.support.inprocess import account

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEADLINE_SECONDS = 20.0


async def test_offer_created_is_published_with_the_201_body(world, settings):
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    queue_name = f"{settings.amqp_prefix}.test.offer_created.{uuid.uuid4().hex[:8]}"
    try:
        channel = await connection.channel()
        events = await declare_events_exchange(channel, topology)
        # Exclusive: the broker drops it with the connection even if an assertion fails first.
        queue = await channel.declare_queue(queue_name, exclusive=True)
        await queue.bind(events, routing_key=EventType.OFFER_CREATED)

        owner = await account(world.auth, "seller")
        resp = await world.offers.post(
            "/v1/offer",
            json={"title": "Published", "bid_price": 99.99, "lifetime": 120},
            headers=owner.headers,
        )
        assert resp.status == 201
        created = await resp.json()

        received: dict[str, Contract] = {}  # by event id: at-least-once delivery may repeat one
        async with queue.iterator() as messages:
            async with asyncio.timeout(DEADLINE_SECONDS):
                async for message in messages:
                    async with message.process():
                        assert message.routing_key == "offer.created"
                        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                        event = decode(message.body)
                        assert message.message_id == event.event_id
                    if isinstance(event, OfferCreated) and event.offer_id == created["id"]:
                        received[event.event_id] = event
                        break
        (event,) = received.values()
        assert event.type is EventType.OFFER_CREATED
        assert event.to_data() == created
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
