"""The dead-letter queue: hand-overs do not fill it with valid bids; operators count, list and replay it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import aio_pika
import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from auction_shared.broker import DELIVERY_LIMIT, Publisher, Topology, dead_letter_depth, declare_bid_pipeline
from auction_shared.events import BidPlaced
from bid_worker.health import start_health
from tests.pipeline.test_bid_rules_live import create_offer
from tests.support.environment import env_of
from tests.support.pipeline import offer_states, wait_applied
from tests.support.processes import ROOT, free_port
from tests.support.waiting import wait_until

OLD_DELIVERY_LIMIT = 20


def bid_for(offer_id: str, price: int) -> BidPlaced:
    return BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer_id),
        user_id=uuid.uuid4(),
        username=f"bidder{price}",
        bid_price=Decimal(price),
        placed_at=datetime.now(timezone.utc),
    )


async def send_bids(settings, bids: list[BidPlaced]) -> None:
    """Publish the bids as intake does, confirmed."""
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        await declare_bid_pipeline(await connection.channel(), topology)
        publisher = Publisher(connection, topology, 5.0)
        await publisher.open()
        for bid in bids:
            await publisher.send(bid)
    finally:
        await connection.close()


async def queue_bids(settings, bids: list[BidPlaced]) -> str:
    """Publish the bids while no worker runs; return the shard queue that holds them."""
    await send_bids(settings, bids)
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        for name in topology.shard_queues:
            queue = await channel.declare_queue(name, passive=True)
            if queue.declaration_result.message_count:
                assert queue.declaration_result.message_count == len(bids)
                return name
    finally:
        await connection.close()
    raise AssertionError("the bids reached no shard queue")


async def hold_then_return(settings, queue_name: str, expected: int, *, crash: bool) -> int:
    """Take every message of the queue in hand, as the active worker does, then give them all back:
    by closing the channel (a worker handing its shard on) or the whole connection (a worker that
    dies). Return the highest x-delivery-count seen."""
    connection = await aio_pika.connect(settings.amqp_url)
    in_hand: list[aio_pika.abc.AbstractIncomingMessage] = []
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    queue = await channel.declare_queue(queue_name, passive=True)

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        in_hand.append(message)

    await queue.consume(take)
    await wait_until(lambda: len(in_hand) == expected, 20, f"{expected} messages in hand")
    counts = [int((m.headers or {}).get("x-delivery-count", 0)) for m in in_hand]
    if not crash:
        await channel.close()
    await connection.close()
    return max(counts)


async def test_more_hand_overs_and_crashes_with_bids_in_hand_than_the_old_limit_dead_letter_no_valid_bid(
    worker_control, offers_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    bids = [bid_for(offer["id"], price) for price in range(2, 32)]
    shard = await queue_bids(settings, bids)
    returns = OLD_DELIVERY_LIMIT + 5
    assert returns < DELIVERY_LIMIT
    seen = 0
    for n in range(returns):
        seen = await hold_then_return(settings, shard, len(bids), crash=n % 2 == 1)
    # Every return was counted by the broker: each bid went out and back more often than 20 times.
    assert seen == returns - 1

    await worker_control.start()
    await wait_applied(settings.database_url, [str(b.bid_id) for b in bids], timeout=60)
    state = (await offer_states(settings.database_url, [offer["id"]]))[offer["id"]]
    assert state["bid_count"] == len(bids) and state["bid_price"] == 31
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        assert await dead_letter_depth(await connection.channel(), Topology.from_settings(settings)) == 0
    finally:
        await connection.close()


async def test_a_shard_queue_declared_by_an_older_release_is_used_as_it_is(settings):
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        channel = await connection.channel()
        old_arguments = {
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            "x-delivery-limit": OLD_DELIVERY_LIMIT,
        }
        await channel.declare_queue(topology.shard_queue(0), durable=True, arguments=old_arguments)
        shards = await declare_bid_pipeline(channel, topology)
        assert [q.name for q in shards] == topology.shard_queues
        # The channel still works after the refused declaration, and the other shards got the new limit.
        again = await channel.declare_queue(
            topology.shard_queue(1),
            durable=True,
            arguments={**old_arguments, "x-delivery-limit": DELIVERY_LIMIT},
        )
        assert again.name == topology.shard_queue(1)
    finally:
        await connection.close()


async def dead_letter(settings, shard: str, expected: int) -> None:
    """Reject (without requeue) the shard queue's messages: the broker dead-letters each, recording
    why in x-death, as it does for a poison message."""
    connection = await aio_pika.connect(settings.amqp_url)
    rejected: list[str | None] = []
    try:
        queue = await (await connection.channel()).declare_queue(shard, passive=True)

        async def reject(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.reject(requeue=False)
            rejected.append(message.message_id)

        await queue.consume(reject)
        await wait_until(lambda: len(rejected) == expected, 20, f"{expected} messages dead-lettered")
    finally:
        await connection.close()


def run_tool(settings, *args: str) -> tuple[list[dict], str]:
    done = subprocess.run(
        [sys.executable, "-m", "bid_worker.dead_letter_queue", *args],
        env=env_of(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


async def test_operators_list_dead_letters_with_their_reason_and_replay_bids_into_their_shard_once(
    worker_control, offers_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    bid = bid_for(offer["id"], 5)
    # The same bid dead-lettered twice (a crash between a replay's confirm and its ack leaves two
    # copies too), and a poison message beside it.
    shard = await queue_bids(settings, [bid, bid])
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        poison = aio_pika.Message(b"not json", message_id="poison-1", headers={"offer_id": offer["id"]})
        await channel.default_exchange.publish(poison, routing_key=shard)
    finally:
        await connection.close()
    await dead_letter(settings, shard, 3)

    listed, summary = run_tool(settings, "list")
    assert "3 dead letters" in summary
    assert [d["message_id"] for d in listed] == [str(bid.bid_id), str(bid.bid_id), "poison-1"]
    assert all(d["reason"] == "rejected" and d["queue"] == shard for d in listed)
    assert listed[0]["event_type"] == "bid.placed" and listed[0]["offer_id"] == offer["id"]
    assert listed[0]["problem"] is None and "not an event" in listed[2]["problem"]
    # Listing changed nothing.
    assert len(run_tool(settings, "list")[0]) == 3

    # A worker with its health probe: the depth of the dead-letter queue shows there.
    worker = await worker_control.start()
    port = free_port()
    runner = await start_health(worker, port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert (await resp.json())["dead_letters"] == 3
            assert REGISTRY.get_sample_value("auction_dead_letter_depth") == 3

            replayed, summary = run_tool(settings, "replay")
            assert "replayed 2, kept 1" in summary
            assert [d["message_id"] for d in replayed] == [str(bid.bid_id)] * 2
            await wait_applied(settings.database_url, [str(bid.bid_id)])
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert (await resp.json())["dead_letters"] == 1
            assert REGISTRY.get_sample_value("auction_dead_letter_depth") == 1
    finally:
        await runner.cleanup()

    # A later bid on the same shard is applied after both copies: by then the second copy was seen.
    sentinel = bid_for(offer["id"], 6)
    await send_bids(settings, [sentinel])
    await wait_applied(settings.database_url, [str(sentinel.bid_id)])
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT id, status FROM bids WHERE offer_id = $1", uuid.UUID(offer["id"]))
    finally:
        await conn.close()
    assert sorted(str(r["id"]) for r in rows) == sorted([str(bid.bid_id), str(sentinel.bid_id)])
    assert (await offer_states(settings.database_url, [offer["id"]]))[offer["id"]]["bid_count"] == 2
    remaining, _ = run_tool(settings, "list")
    assert [d["message_id"] for d in remaining] == ["poison-1"]


@pytest.mark.parametrize("command", [["list"], ["replay"]])
def test_the_dead_letter_tool_says_what_is_wrong_with_its_settings(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bid_worker.dead_letter_queue", *command],
        env={"PATH": "/usr/bin:/bin", "BID_SHARDS": "zero"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "BID_SHARDS" in done.stderr


@pytest.mark.parametrize(
    "target, command",
    [
        (["dead-letters"], "-m bid_worker.dead_letter_queue list"),
        (["replay-dead-letters", "IDS=a b"], "-m bid_worker.dead_letter_queue replay a b"),
    ],
)
def test_the_make_targets_run_the_dead_letter_tool(target: list[str], command: str) -> None:
    done = subprocess.run(["make", "-n", *target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert command in done.stdout
