"""The confirmed publisher against the real broker: each caller gets its own message's outcome.

Publishes of one loop iteration leave in one write and share one channel with no lock, so the hard
cases are about credit: a confirm, a nack or a return must reach the publish it belongs to (else a
bid the broker never took would be answered 202), under concurrency and across a lost connection.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from auction_shared.broker import Outgoing, Publisher, Topology, broker_is_up, connect
from auction_shared.config import Settings
from auction_shared.problems import DependencyDown
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until

# Routing keys of the three outcomes: bound to a quorum queue, to a full queue, to nothing.
KEPT, REFUSED, UNROUTABLE = "kept.x", "full.x", "nowhere.x"


@dataclass
class Broker:
    """A topic exchange of the test's own with one queue per outcome, and a reader of the kept one."""

    topology: Topology
    channel: AbstractChannel
    kept_queue: str
    full_queue: str

    async def kept_ids(self) -> list[str]:
        queue = await self.channel.get_queue(self.kept_queue)
        ids = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            assert message.message_id is not None
            ids.append(message.message_id)
        return ids


@pytest.fixture
async def own_broker(settings: Settings) -> AsyncIterator[Broker]:
    topology = Topology(prefix=f"{settings.amqp_prefix}_pub_{uuid.uuid4().hex[:6]}", bid_shards=1)
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    kept = await channel.declare_queue(
        f"{topology.prefix}.kept", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await kept.bind(exchange, "kept.#")
    # Holds nothing and refuses what does not fit: the broker answers each such publish with a nack.
    full = await channel.declare_queue(
        f"{topology.prefix}.full", durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await full.bind(exchange, "full.#")
    try:
        yield Broker(topology, channel, kept.name, full.name)
    finally:
        await channel.queue_delete(kept.name)
        await channel.queue_delete(full.name)
        await channel.exchange_delete(topology.events_exchange)
        await connection.close()


async def open_publisher(
    settings: Settings, topology: Topology, timeout: float = 5.0
) -> tuple[AbstractRobustConnection, Publisher]:
    connection = await connect(settings)
    publisher = Publisher(connection, topology, timeout)
    await publisher.open()
    return connection, publisher


@asynccontextmanager
async def publishing_through_a_proxy(
    settings: Settings, topology: Topology
) -> AsyncIterator[tuple[FaultProxy, AbstractRobustConnection, Publisher]]:
    """A publisher whose broker connection runs through a proxy the test can cut."""
    with FaultProxy("127.0.0.1", 5672) as proxy:
        through = replace(settings, amqp_url=proxy.url_for(settings.amqp_url))
        connection, publisher = await open_publisher(through, topology, timeout=3.0)
        try:
            yield proxy, connection, publisher
        finally:
            await publisher.close()
            await connection.close()


async def outcome(publisher: Publisher, key: str, message_id: str) -> str:
    """What the caller of one publish sees: confirmed, refused (nack), returned or down."""
    try:
        await publisher.publish(key, b'{"n": 1}', message_id=message_id, headers={"offer_id": message_id})
    except DependencyDown as exc:
        cause = exc.__cause__
        if isinstance(cause, aio_pika.exceptions.PublishError):
            return "returned"
        if isinstance(cause, aio_pika.exceptions.DeliveryError):
            return "refused"
        return "down"
    return "confirmed"


EXPECTED = {KEPT: "confirmed", REFUSED: "refused", UNROUTABLE: "returned"}


async def test_concurrent_publishes_each_get_the_outcome_of_their_own_message(
    settings: Settings, own_broker: Broker
) -> None:
    connection, publisher = await open_publisher(settings, own_broker.topology)
    rng = random.Random(14)
    try:
        for wave in range(3):
            keys = [rng.choice((KEPT, KEPT, REFUSED, UNROUTABLE)) for _ in range(600)]
            ids = [f"{wave}-{i}" for i in range(len(keys))]
            # All at once: they leave in a few writes, and the quorum queue confirms later than the
            # full queue refuses, so acks, nacks and returns come back interleaved.
            seen = await asyncio.gather(*(outcome(publisher, k, i) for k, i in zip(keys, ids)))
            wrong = [(i, k, s) for i, k, s in zip(ids, keys, seen) if s != EXPECTED[k]]
            assert not wrong, f"{len(wrong)} publishes got another message's outcome: {wrong[:10]}"
            kept = await own_broker.kept_ids()
            assert sorted(kept) == sorted(i for i, k in zip(ids, keys) if k == KEPT)
    finally:
        await publisher.close()
        await connection.close()


async def test_a_return_reaches_its_own_publish_when_another_with_the_same_id_is_in_flight(
    settings: Settings, own_broker: Broker
) -> None:
    connection, publisher = await open_publisher(settings, own_broker.topology)
    try:
        # A retry republishes a bid under its id; the broker's return names only that id.
        pairs = [(f"same-{n}", key) for n in range(100) for key in (KEPT, UNROUTABLE, KEPT, REFUSED)]
        seen = await asyncio.gather(*(outcome(publisher, key, mid) for mid, key in pairs))
        assert list(seen) == [EXPECTED[key] for _, key in pairs]
        kept = await own_broker.kept_ids()
        assert sorted(kept) == sorted([f"same-{n}" for n in range(100)] * 2)
    finally:
        await publisher.close()
        await connection.close()


async def test_a_connection_lost_mid_batch_confirms_only_what_the_broker_took_and_publishing_resumes(
    settings: Settings, own_broker: Broker
) -> None:
    async with publishing_through_a_proxy(settings, own_broker.topology) as (proxy, connection, publisher):
        ids = [f"cut-{i}" for i in range(2000)]
        calls = [asyncio.create_task(outcome(publisher, KEPT, i)) for i in ids]
        # Let the first batches go out, then cut while later ones are written or unconfirmed.
        for _ in range(3):
            await asyncio.sleep(0)
        proxy.cut()
        seen = await asyncio.gather(*calls)
        assert set(seen) <= {"confirmed", "down"}, set(seen)
        assert "down" in seen, "the cut came too late to catch anything in flight"
        # Every publish answered as confirmed is in the queue (a 503 may still have reached it).
        proxy.restore()
        await publishing_again(connection, publisher)
        after = [f"after-{i}" for i in range(200)]
        resumed = await asyncio.gather(*(outcome(publisher, KEPT, i) for i in after))
        assert set(resumed) == {"confirmed"}
        kept = set(await own_broker.kept_ids())
        confirmed = {i for i, s in zip(ids, seen) if s == "confirmed"}
        assert confirmed <= kept, f"{len(confirmed - kept)} confirmed messages missing"
        assert set(after) <= kept


async def test_a_channel_the_broker_closes_mid_batch_fails_its_publishes_and_the_next_ones_get_through(
    settings: Settings, own_broker: Broker
) -> None:
    connection, publisher = await open_publisher(settings, own_broker.topology, timeout=3.0)
    try:
        # An exchange deleted under the publisher: the broker closes its channel (404) on the next
        # publish, failing every publish of that batch; the robust channel reopens and re-declares it.
        await own_broker.channel.exchange_delete(own_broker.topology.events_exchange)
        seen = await asyncio.gather(*(outcome(publisher, KEPT, f"lost-{i}") for i in range(300)))
        assert set(seen) == {"down"}, set(seen)

        await publishing_again(connection, publisher)
        # Re-bind the queues the deleted exchange took with it, then publish as before.
        exchange = await own_broker.channel.get_exchange(own_broker.topology.events_exchange)
        kept = await own_broker.channel.get_queue(own_broker.kept_queue)
        await kept.bind(exchange, "kept.#")
        seen = await asyncio.gather(*(outcome(publisher, KEPT, f"again-{i}") for i in range(300)))
        assert set(seen) == {"confirmed"}
        assert sorted(await own_broker.kept_ids()) == sorted(f"again-{i}" for i in range(300))
    finally:
        await publisher.close()
        await connection.close()


async def publishing_again(connection: AbstractRobustConnection, publisher: Publisher) -> None:
    """Wait until the connection is back and the publisher's channel with it: the robust channel is
    restored a moment after the connection, and a publish in between is refused as down (503)."""
    await wait_until(lambda: broker_is_up(connection), 30, "the publisher's connection back")

    async def probe_returned() -> bool:
        return await outcome(publisher, UNROUTABLE, uuid.uuid4().hex) == "returned"

    await wait_until(probe_returned, 30, "the publisher's channel back")


def kind_of(result: BaseException | None) -> str:
    """What a publish_all caller sees for one message, in the words of `outcome`."""
    if result is None:
        return "confirmed"
    if isinstance(result, DependencyDown):
        return "refused" if isinstance(result.__cause__, aio_pika.exceptions.DeliveryError) else "down"
    return "unencodable"


async def test_a_relay_batch_gets_each_messages_own_outcome_in_order_with_a_bad_one_in_the_middle(
    settings: Settings, own_broker: Broker
) -> None:
    """publish_all (the outbox relay's batch): acks, nacks, returns and a message whose headers
    cannot be encoded, interleaved; each index gets its own outcome and the queue keeps the order."""
    connection, publisher = await open_publisher(settings, own_broker.topology)
    rng = random.Random(41)
    try:
        keys = [rng.choice((KEPT, KEPT, REFUSED, UNROUTABLE)) for _ in range(500)]
        batch = [
            Outgoing(k, b'{"n": 1}', f"all-{i}", {"offer_id": str(i)}, mandatory=True)
            for i, k in enumerate(keys)
        ]
        batch[250] = Outgoing(KEPT, b"{}", "all-250", {"bad": object()})  # type: ignore[dict-item]  # on purpose
        results = await publisher.publish_all(batch)
        seen = [kind_of(r) for r in results]
        # A nack and a return both reach the caller as a refusal (DeliveryError; PublishError is one).
        want = {KEPT: "confirmed", REFUSED: "refused", UNROUTABLE: "refused"}
        expected = [want[k] for k in keys]
        expected[250] = "unencodable"
        assert seen == expected
        kept = await own_broker.kept_ids()
        assert kept == [f"all-{i}" for i, k in enumerate(keys) if k == KEPT and i != 250]  # in order
    finally:
        await publisher.close()
        await connection.close()


async def test_a_relay_batch_cut_mid_flight_reports_down_for_what_was_not_confirmed(
    settings: Settings, own_broker: Broker
) -> None:
    async with publishing_through_a_proxy(settings, own_broker.topology) as (proxy, connection, publisher):
        batch = [Outgoing(KEPT, b'{"n": 1}' * 200, f"cut-all-{i}") for i in range(3000)]
        running = asyncio.create_task(publisher.publish_all(batch))
        for _ in range(3):
            await asyncio.sleep(0)
        proxy.cut()
        seen = [kind_of(r) for r in await running]
        assert set(seen) <= {"confirmed", "down"} and "down" in seen, set(seen)
        proxy.restore()
        await publishing_again(connection, publisher)
        again = await publisher.publish_all([Outgoing(KEPT, b"{}", f"after-all-{i}") for i in range(100)])
        assert again == [None] * 100
        kept = set(await own_broker.kept_ids())
        confirmed = {m.message_id for m, s in zip(batch, seen) if s == "confirmed"}
        assert confirmed <= kept and {f"after-all-{i}" for i in range(100)} <= kept
