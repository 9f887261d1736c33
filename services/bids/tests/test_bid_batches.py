"""BidBatches against the real broker: one message per offer and loop turn, and each bid's own answer.

The hard cases are about credit and order: every bid of a message the broker confirmed is answered,
every bid of a message it nacked or returned fails (each with its own 503), and an offer's bids reach
its queue in the order they were handed over, within a message and from one message to the next.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aio_pika
import pytest

from auction_shared.broker import Publisher, Topology, connect
from auction_shared.config import Settings
from auction_shared.events import BidsPlaced, Contract, decode
from auction_shared.problems import DependencyDown
from bids.batching import BidBatches
from tests.support.faultproxy import FaultProxy
from tests.test_bids_placed_contract import bid
from tests.test_publisher import publishing_again


class Broker:
    """A topic exchange of the test's own, the queues a test binds to `bid.placed`, and a publisher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology(
            prefix=f"{settings.amqp_prefix}_batches_{uuid.uuid4().hex[:6]}", bid_shards=1
        )
        self.queues: list[str] = []

    async def open(self) -> None:
        self.connection = await aio_pika.connect(self.settings.amqp_url)
        self.channel = await self.connection.channel()
        self.exchange = await self.channel.declare_exchange(
            self.topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.publishing = await connect(self.settings)
        self.publisher = Publisher(self.publishing, self.topology, 5.0)
        await self.publisher.open()

    async def bind(self, **arguments: Any) -> aio_pika.abc.AbstractQueue:
        queue = await self.channel.declare_queue(
            f"{self.topology.prefix}.q{len(self.queues)}", durable=True, arguments=arguments
        )
        await queue.bind(self.exchange, "bid.placed")
        self.queues.append(queue.name)
        return queue

    async def messages(self, queue: aio_pika.abc.AbstractQueue) -> list[tuple[str | None, Contract]]:
        """(message id, contract) of every message in the queue, in queue order."""
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append((message.message_id, decode(message.body)))
        return found

    async def close(self) -> None:
        await self.publisher.close()
        await self.publishing.close()
        for name in self.queues:
            await self.channel.queue_delete(name)
        await self.channel.exchange_delete(self.topology.events_exchange)
        await self.connection.close()


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    own = Broker(settings)
    await own.open()
    try:
        yield own
    finally:
        await own.close()


def flattened(messages: list[tuple[str | None, Contract]]) -> list[Contract]:
    """Every bid in queue order, whether it travelled alone or with others."""
    bids: list[Contract] = []
    for _, event in messages:
        bids += event.bids if isinstance(event, BidsPlaced) else [event]
    return bids


async def test_one_turns_bids_leave_as_one_message_per_offer_in_order_and_each_is_answered(
    broker: Broker,
) -> None:
    queue = await broker.bind(**{"x-queue-type": "quorum"})
    batches = BidBatches(broker.publisher)
    first, second = uuid.uuid4(), uuid.uuid4()
    bids = [bid(first if i % 4 else second, i + 1) for i in range(40)]
    assert await asyncio.gather(*(batches.send(b) for b in bids)) == [None] * 40

    messages = await broker.messages(queue)
    assert [type(event) for _, event in messages] == [BidsPlaced, BidsPlaced]
    (_, to_second), (_, to_first) = messages  # the offers in the order their first bid came
    assert isinstance(to_second, BidsPlaced) and isinstance(to_first, BidsPlaced)
    assert list(to_second.bids) == [b for b in bids if b.offer_id == second]
    assert list(to_first.bids) == [b for b in bids if b.offer_id == first]


async def test_a_lone_bid_leaves_as_the_plain_bid_placed_it_always_was(broker: Broker) -> None:
    queue = await broker.bind()
    alone = bid(uuid.uuid4(), 5)
    await BidBatches(broker.publisher).send(alone)
    assert await broker.messages(queue) == [(str(alone.bid_id), alone)]


async def test_more_bids_than_one_message_holds_leave_in_several_in_order(broker: Broker) -> None:
    queue = await broker.bind()
    offer = uuid.uuid4()
    bids = [bid(offer, i + 1) for i in range(40)]
    batches = BidBatches(broker.publisher, limit=16)
    await asyncio.gather(*(batches.send(b) for b in bids))
    messages = await broker.messages(queue)
    assert [len(e.bids) if isinstance(e, BidsPlaced) else 1 for _, e in messages] == [16, 16, 8]
    assert flattened(messages) == bids


async def test_bids_handed_over_across_many_turns_reach_the_queue_in_the_order_handed_over(
    broker: Broker,
) -> None:
    queue = await broker.bind(**{"x-queue-type": "quorum"})
    batches = BidBatches(broker.publisher, limit=8)
    offer = uuid.uuid4()
    bids = [bid(offer, i + 1) for i in range(200)]
    sends = []
    for i, b in enumerate(bids):
        sends.append(asyncio.ensure_future(batches.send(b)))
        if i % 7 == 0:
            await asyncio.sleep(0)  # a new loop turn: the next bids go in the next message
    await asyncio.gather(*sends)
    messages = await broker.messages(queue)
    assert len(messages) > 25  # many messages, not one
    assert flattened(messages) == bids


async def test_a_nack_fails_every_bid_of_its_message_and_no_other(broker: Broker) -> None:
    # Holds one message and refuses the next: the broker nacks the second message.
    queue = await broker.bind(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    batches = BidBatches(broker.publisher)
    kept, refused = uuid.uuid4(), uuid.uuid4()
    bids = [bid(kept if i % 2 == 0 else refused, i + 1) for i in range(10)]
    outcomes = await asyncio.gather(*(batches.send(b) for b in bids), return_exceptions=True)

    for b, outcome in zip(bids, outcomes):
        if b.offer_id == kept:
            assert outcome is None
        else:
            assert isinstance(outcome, DependencyDown) and outcome.status == 503
    failures = [o for o in outcomes if o is not None]
    assert len({id(o) for o in failures}) == 5  # each request raises its own
    [(_, event)] = await broker.messages(queue)
    assert isinstance(event, BidsPlaced) and event.offer_id == kept


async def test_a_message_no_queue_takes_fails_every_bid_in_it(broker: Broker) -> None:
    batches = BidBatches(broker.publisher)
    offer = uuid.uuid4()
    outcomes = await asyncio.gather(
        *(batches.send(bid(offer, i + 1)) for i in range(6)), return_exceptions=True
    )
    assert all(isinstance(o, DependencyDown) for o in outcomes), outcomes


async def test_a_cut_connection_fails_only_bids_not_confirmed_and_later_bids_get_through(
    settings: Settings, broker: Broker
) -> None:
    queue = await broker.bind(**{"x-queue-type": "quorum"})
    with FaultProxy("127.0.0.1", 5672) as proxy:
        connection = await connect(replace(settings, amqp_url=proxy.url_for(settings.amqp_url)))
        publisher = Publisher(connection, broker.topology, 3.0)
        await publisher.open()
        try:
            batches = BidBatches(publisher, limit=16)
            offer = uuid.uuid4()
            bids = [bid(offer, i + 1) for i in range(2000)]
            sends = [asyncio.ensure_future(batches.send(b)) for b in bids]
            for _ in range(3):  # the first messages written, later ones written or unconfirmed
                await asyncio.sleep(0)
            proxy.cut()
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
            assert all(o is None or isinstance(o, DependencyDown) for o in outcomes), outcomes
            assert any(o is not None for o in outcomes), "the cut came too late to catch anything in flight"
            proxy.restore()
            await publishing_again(connection, publisher)
            later = [bid(offer, 5000 + i) for i in range(50)]
            assert await asyncio.gather(*(batches.send(b) for b in later)) == [None] * 50
        finally:
            await publisher.close()
            await connection.close()
    queued = [b.bid_id for b in flattened(await broker.messages(queue))]
    confirmed = {b.bid_id for b, o in zip(bids, outcomes) if o is None}
    assert confirmed <= set(queued), f"{len(confirmed - set(queued))} bids answered 202 are not queued"
    assert queued[-50:] == [b.bid_id for b in later]
