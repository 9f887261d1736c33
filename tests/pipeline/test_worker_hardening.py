"""No message stalls a shard: what can never be applied is dead-lettered with its reason, the rest goes on."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import aio_pika
import asyncpg

from auction_shared.broker import Topology
from tests.pipeline.conftest import publish_raw, raw_bid
from tests.pipeline.test_bid_rules_live import create_offer
from tests.support.pipeline import wait_applied


async def dead_letters(raw_channel, settings, wanted: set[str]) -> dict[str, str]:
    """message id -> x-dead-reason of the dead letters with the wanted ids (acked as read)."""
    dead = await raw_channel.get_queue(Topology.from_settings(settings).dead_letter_queue)
    found: dict[str, str] = {}
    for _ in range(100):
        message = await dead.get(no_ack=False, fail=False)
        if message is None:
            if wanted <= found.keys():
                break
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        if message.message_id in wanted:
            reason = (message.headers or {}).get("x-dead-reason")
            found[message.message_id] = reason.decode() if isinstance(reason, bytes) else str(reason)
    return found


async def test_a_bid_the_database_refuses_on_every_try_is_dead_lettered_and_its_neighbours_applied(
    worker_control, raw_channel, offers_client, bids_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    conn = await asyncpg.connect(settings.database_url)
    try:
        # A value this database refuses on every try (a check violation), as an overflow would be.
        await conn.execute("ALTER TABLE bids ADD CONSTRAINT refuse_poison CHECK (username <> 'poison')")
        before, poison, after = (
            raw_bid(offer["id"], "before", "2"),
            raw_bid(offer["id"], "poison", "3"),
            raw_bid(offer["id"], "after", "4"),
        )
        # Queued before the worker starts: the three arrive in one batch.
        for b in (before, poison, after):
            await publish_raw(raw_channel, settings, b.encode(), offer["id"], str(b.bid_id))
        await worker_control.start()
        await wait_applied(settings.database_url, [str(before.bid_id), str(after.bid_id)])
        reasons = await dead_letters(raw_channel, settings, {str(poison.bid_id)})
        assert "23514" in reasons[str(poison.bid_id)]  # check_violation, named in x-dead-reason
        row = await conn.fetchrow(
            "SELECT bid_price, highest_bid_id FROM offers WHERE id = $1", uuid.UUID(offer["id"])
        )
        assert row["highest_bid_id"] == after.bid_id and row["bid_price"] == Decimal(4)
        assert not await conn.fetchval("SELECT count(*) FROM bids WHERE id = $1", poison.bid_id)
    finally:
        await conn.execute("ALTER TABLE bids DROP CONSTRAINT IF EXISTS refuse_poison")
        await conn.close()


async def test_a_bid_for_an_unknown_offer_is_dead_lettered_not_dropped(
    worker, raw_channel, offers_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    stray = raw_bid(str(uuid.uuid4()), "stray", "5")
    await publish_raw(raw_channel, settings, stray.encode(), str(stray.offer_id), str(stray.bid_id))
    # A message whose offer_id header names another offer than its body: it sits in the wrong shard.
    misrouted = raw_bid(offer["id"], "misrouted", "5")
    await publish_raw(raw_channel, settings, misrouted.encode(), str(uuid.uuid4()), str(misrouted.bid_id))
    follower = raw_bid(offer["id"], "follower", "6")
    await publish_raw(raw_channel, settings, follower.encode(), offer["id"], str(follower.bid_id))
    await wait_applied(settings.database_url, [str(follower.bid_id)])
    reasons = await dead_letters(raw_channel, settings, {str(stray.bid_id), str(misrouted.bid_id)})
    assert "unknown offer" in reasons[str(stray.bid_id)]
    assert "offer_id header" in reasons[str(misrouted.bid_id)]
    assert "dead_lettered=2" in repr(worker)


async def all_consumed(raw_channel, settings) -> bool:
    """Every shard queue exists and has a consumer."""
    connection = (await raw_channel.get_underlay_channel()).connection
    for name in Topology.from_settings(settings).shard_queues:
        probe = await connection.channel()  # a 404 closes its channel: one probe per queue
        try:
            declared = await probe.queue_declare(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            if not probe.is_closed:
                await probe.close()
        if declared.consumer_count < 1:
            return False
    return True


async def test_shard_queues_deleted_under_the_worker_are_declared_again_and_bids_flow_again(
    worker, raw_channel, offers_client, make_user, settings
):
    """An operator deletes the shard queues (the management UI's Delete): the broker cancels their
    consumers, and the worker declares the queues again and consumes them, without a restart."""
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    first = raw_bid(offer["id"], "first", "2")
    await publish_raw(raw_channel, settings, first.encode(), offer["id"], str(first.bid_id))
    await wait_applied(settings.database_url, [str(first.bid_id)])
    for name in Topology.from_settings(settings).shard_queues:
        await raw_channel.queue_delete(name)
    # While a shard queue is gone, RabbitMQ 3.10's consistent-hash exchange still routes to it and
    # drops the message without returning it: wait for the queues to be back, consumed.
    deadline = time.monotonic() + 30
    while not await all_consumed(raw_channel, settings):
        assert time.monotonic() < deadline, "the shard queues were never declared and consumed again"
        await asyncio.sleep(0.2)
    later = raw_bid(offer["id"], "later", "3")
    await publish_raw(raw_channel, settings, later.encode(), offer["id"], str(later.bid_id))
    await wait_applied(settings.database_url, [str(later.bid_id)])
    assert worker.shard_loops_alive()
    assert not worker.failed.is_set()
