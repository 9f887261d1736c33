"""PUT /v1/bid/{id}: only the seller, only the bid that leads right now, only while the offer is live.

The bids are put in place as the bid-worker leaves them (rows in `bids`, the offer's leader), so each
state the seller may meet is reached exactly; the whole pipeline with a worker is in tests/pipeline.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import aio_pika
import asyncpg
import pytest

from auction_shared.broker import Topology, declare_events_exchange
from auction_shared.events import BidUpdated, Contract, EventType, OfferSold, decode, private_key
from tests.support.api import Account
from tests.support.inprocess import account, accounts, new_offer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


async def put_bid(
    db: asyncpg.Connection, offer: dict, bidder: Account, price: str, status: str, *, leads: bool = False
) -> str:
    """A bid as the worker records it; `leads` makes it the offer's leader at its price."""
    bid_id = uuid.uuid4()
    reason = "too_low" if status == "rejected" else None
    await db.execute(
        "INSERT INTO bids (id, offer_id, user_id, username, bid_price, max_price, placed_at, status, reason,"
        " processed_at) VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8,"
        " CASE WHEN $7 = 'pending' THEN NULL ELSE now() END)",
        bid_id,
        uuid.UUID(offer["id"]),
        uuid.UUID(bidder.user_id),
        bidder.username,
        Decimal(price),
        Decimal(price) * 2,
        status,
        reason,
    )
    if leads:
        await db.execute(
            "UPDATE offers SET highest_bid_id = $2, highest_bidder = $3, leader_id = $4, bid_price = $5,"
            " leader_max_price = $6, bid_count = bid_count + 1, version = version + 1 WHERE id = $1",
            uuid.UUID(offer["id"]),
            bid_id,
            bidder.username,
            uuid.UUID(bidder.user_id),
            Decimal(price),
            Decimal(price) * 2,
        )
    return str(bid_id)


async def state(db: asyncpg.Connection, offer: dict, bid_id: str) -> tuple:
    row = await db.fetchrow(
        "SELECT o.status, o.sold, o.end_reason, o.version, b.status AS bid_status, b.accepted"
        " FROM offers o JOIN bids b ON b.offer_id = o.id WHERE o.id = $1 AND b.id = $2",
        uuid.UUID(offer["id"]),
        uuid.UUID(bid_id),
    )
    return tuple(row)


async def accept(world, seller: Account, bid_id: str, base: str = "/v1/bid"):
    return await world.offers.put(f"{base}/{bid_id}", headers=seller.headers)


async def test_the_leading_bid_is_sold_at_the_current_price_and_three_events_follow(world, settings, db):
    seller, alice = await account(world.auth, "seller"), await account(world.auth, "alice")
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        events = await declare_events_exchange(channel, topology)
        queue = await channel.declare_queue(exclusive=True)
        for key in (EventType.OFFER_SOLD, private_key(seller.user_id), private_key(alice.user_id)):
            await queue.bind(events, routing_key=key)

        # An unmet reserve (30) is waived by the accept.
        offer = await new_offer(world, seller, bid_price=10, reserve_price=30, lifetime=3600)
        bid_id = await put_bid(db, offer, alice, "12.50", "leading", leads=True)
        resp = await accept(world, seller, bid_id)
        assert resp.status == 200, await resp.text()
        bid = await resp.json()
        assert bid["status"] == "accepted" and bid["accepted"] is True and bid["bid_price"] == 12.5
        assert bid["max_price"] is None  # the seller never sees the bidder's maximum
        got = await (await world.offers.get(f"/v1/offer/{offer['id']}", headers=seller.headers)).json()
        assert (got["status"], got["sold"], got["end_reason"], got["bid_price"]) == (
            "sold",
            True,
            "accepted",
            12.5,
        )
        assert got["version"] == 3  # created 1, the bid 2, the sale 3

        received: dict[str, tuple[str, Contract]] = {}
        async with queue.iterator() as messages:
            async with asyncio.timeout(20):
                async for message in messages:
                    async with message.process():
                        event = decode(message.body)
                    received[event.event_id] = (message.routing_key or "", event)
                    if len(received) == 3:
                        break
    finally:
        await connection.close()
    by_key = {key: event for key, event in received.values()}
    public, private = by_key["offer.sold"], by_key[private_key(seller.user_id)]
    assert isinstance(public, OfferSold) and isinstance(private, OfferSold)
    assert public.recipient is None and private.recipient == uuid.UUID(seller.user_id)
    for sold in (public, private):
        assert sold.offer["status"] == "sold" and sold.offer["version"] == 3 and sold.bid["id"] == bid_id
        assert "reserve_price" not in sold.offer and sold.bid["max_price"] is None
    alert = by_key[private_key(alice.user_id)]
    assert isinstance(alert, BidUpdated) and alert.recipient == uuid.UUID(alice.user_id)
    [change] = alert.changes
    assert change.bid["status"] == "accepted" and change.bid["max_price"] == 25  # their own view
    assert change.offer["status"] == "sold"


@pytest.mark.parametrize("status", ["pending", "outbid", "superseded", "rejected"])
async def test_a_bid_that_does_not_lead_is_409_and_nothing_changes(world, db, status):
    seller, alice, bob = await accounts(world.auth, *("seller", "alice", "bob"))
    offer = await new_offer(world, seller)
    other = await put_bid(db, offer, alice, "11", status)
    leader = await put_bid(db, offer, bob, "12", "leading", leads=True)
    before = await state(db, offer, other), await state(db, offer, leader)
    resp = await accept(world, seller, other)
    assert resp.status == 409 and resp.content_type == PROBLEM
    assert status in (await resp.json())["detail"]
    assert (await state(db, offer, other), await state(db, offer, leader)) == before


async def test_a_second_accept_is_409_and_so_is_one_of_another_bid_after_the_sale(world, db):
    seller, alice, bob = await accounts(world.auth, *("seller", "alice", "bob"))
    offer = await new_offer(world, seller)
    outbid = await put_bid(db, offer, bob, "11", "outbid")
    leader = await put_bid(db, offer, alice, "12", "leading", leads=True)
    assert (await accept(world, seller, leader)).status == 200
    sold = await state(db, offer, leader)
    for bid_id, base in ((leader, "/v1/bids"), (leader, "/v1/bid"), (outbid, "/v1/bid")):
        resp = await accept(world, seller, bid_id, base)
        assert resp.status == 409 and "sold" in (await resp.json())["detail"]
    assert await state(db, offer, leader) == sold and sold[:4] == ("sold", True, "accepted", 3)


async def test_an_accept_after_the_end_is_409_even_before_the_close(world, db):
    seller, alice = await account(world.auth, "seller"), await account(world.auth, "alice")
    offer = await new_offer(world, seller, lifetime=60)
    leader = await put_bid(db, offer, alice, "12", "leading", leads=True)
    # The end has passed by the database's clock; no close has run yet (the offer is still live).
    await db.execute(
        "UPDATE offers SET ends_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(offer["id"])
    )
    before = await state(db, offer, leader)
    resp = await accept(world, seller, leader)
    assert resp.status == 409 and "end" in (await resp.json())["detail"]
    assert await state(db, offer, leader) == before and before[0] == "live"


async def test_an_ended_offer_is_409(world, db):
    seller, alice = await account(world.auth, "seller"), await account(world.auth, "alice")
    offer = await new_offer(world, seller, lifetime=60)
    leader = await put_bid(db, offer, alice, "12", "leading", leads=True)
    await db.execute(
        "UPDATE offers SET status = 'ended', end_reason = 'reserve_not_met', ended_at = now() WHERE id = $1",
        uuid.UUID(offer["id"]),
    )
    resp = await accept(world, seller, leader)
    assert resp.status == 409 and "ended" in (await resp.json())["detail"]


async def test_unknown_and_malformed_bids_are_404(world):
    seller = await account(world.auth, "seller")
    for bid_id in (str(uuid.uuid4()), "not-a-bid"):
        resp = await accept(world, seller, bid_id)
        assert resp.status == 404 and resp.content_type == PROBLEM


async def test_ownership_is_checked_before_the_offers_lock_is_taken(world, settings, db):
    seller, alice, eve = await accounts(world.auth, *("seller", "alice", "eve"))
    offer = await new_offer(world, seller)
    leader = await put_bid(db, offer, alice, "12", "leading", leads=True)
    # Another transaction (as a bid-worker's batch would) holds the offer's row lock meanwhile.
    holder = await asyncpg.connect(settings.database_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM offers WHERE id = $1 FOR NO KEY UPDATE", uuid.UUID(offer["id"]))
        # Strangers (the bidder themselves, anyone) are refused while the lock is held: they never wait
        # for it. A bound on the wait only turns a hang into a failure here.
        for stranger in (alice, eve):
            resp = await asyncio.wait_for(accept(world, stranger, leader), timeout=30)
            assert resp.status == 403 and resp.content_type == PROBLEM
        # The seller's accept does queue behind the lock, and goes through once it is released.
        sellers = asyncio.ensure_future(accept(world, seller, leader))

        async def waits_for_the_lock() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%FOR NO KEY UPDATE%'"
                )
            )

        await wait_until(waits_for_the_lock, 20, "the seller's accept to wait for the lock")
        assert not sellers.done()
        await held.rollback()
        resp = await asyncio.wait_for(sellers, timeout=30)
        assert resp.status == 200
    finally:
        await holder.close()


async def test_concurrent_accepts_of_one_bid_sell_once(world, db):
    seller, alice = await accounts(world.auth, "seller", "alice")
    offer = await new_offer(world, seller)
    leader = await put_bid(db, offer, alice, "12", "leading", leads=True)
    answers = await asyncio.gather(*(accept(world, seller, leader) for _ in range(12)))
    assert sorted(r.status for r in answers) == [200] + [409] * 11
    # Sold once: one version step (created 1, the bid 2, the sale 3), whoever won the lock.
    assert await state(db, offer, leader) == ("sold", True, "accepted", 3, "accepted", True)
