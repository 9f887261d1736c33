"""Intake's grouped pending rows: every caller's row is committed when its record returns, a row the
database refuses fails only its own bid, and concurrent bids share writes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import asyncpg
import pytest

from auction_shared.events import BidPlaced
from bids.pending import PendingRecords
from tests.support.inprocess import accounts, new_offer, place_bid

pytestmark = pytest.mark.asyncio(loop_scope="module")


class CountingPool:
    """The pool, counting the statements the writer sends through it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.writes = 0

    async def execute(self, *args: object) -> str:
        self.writes += 1
        return await self.pool.execute(*args)  # type: ignore[arg-type]


def a_bid(offer_id: str, user_id: str, price: int) -> BidPlaced:
    return BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer_id),
        user_id=uuid.UUID(user_id),
        username="grouped",
        bid_price=Decimal(price),
        placed_at=datetime.now(timezone.utc),
    )


async def test_concurrent_records_are_each_committed_when_they_return_and_share_writes(world, settings):
    owner, bidder = await accounts(world.auth, "pend-owner", "pend-bidder")
    offer = await new_offer(world, owner)
    bids = [a_bid(offer["id"], bidder.user_id, 10 + i) for i in range(300)]
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    try:
        counted = CountingPool(pool)
        records = PendingRecords(counted)  # type: ignore[arg-type]  # only execute is used

        async def record_then_read(bid: BidPlaced) -> str | None:
            await records.record(bid)
            return await pool.fetchval("SELECT status FROM bids WHERE id = $1", bid.bid_id)

        seen = await asyncio.gather(*(record_then_read(b) for b in bids))
        await records.close()
    finally:
        await pool.close()
    assert seen == ["pending"] * len(bids)  # readable the moment each record returned
    assert counted.writes < len(bids) / 10, f"{counted.writes} writes for {len(bids)} concurrent bids"


async def test_a_row_the_database_refuses_fails_only_its_own_bid(world, db, settings):
    owner, bidder = await accounts(world.auth, "pend-owner2", "pend-bidder2")
    offer = await new_offer(world, owner)
    good = [a_bid(offer["id"], bidder.user_id, 10 + i) for i in range(20)]
    # An offer that does not exist: the bids' foreign key refuses this one row.
    orphan = a_bid(str(uuid.uuid4()), bidder.user_id, 99)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        records = PendingRecords(pool)
        outcomes = await asyncio.gather(
            *(records.record(b) for b in [*good[:10], orphan, *good[10:]]), return_exceptions=True
        )
        await records.close()
    finally:
        await pool.close()
    assert isinstance(outcomes[10], asyncpg.ForeignKeyViolationError)
    assert outcomes[:10] + outcomes[11:] == [None] * 20
    statuses = await db.fetch("SELECT status FROM bids WHERE id = ANY($1::uuid[])", [b.bid_id for b in good])
    assert [r["status"] for r in statuses] == ["pending"] * 20
    assert await db.fetchval("SELECT count(*) FROM bids WHERE id = $1", orphan.bid_id) == 0


async def test_a_bid_is_recorded_and_queued_while_a_worker_batch_holds_its_offer(world, settings, db):
    """The worker locks a batch's offers for its whole transaction; a pending row's foreign-key check
    must not wait for that (it did, with FOR UPDATE: every bid waited for the batch before it)."""
    owner, bidder = await accounts(world.auth, "pend-owner3", "pend-bidder3")
    offer = await new_offer(world, owner)
    holder = await asyncpg.connect(settings.database_url)
    try:
        batch = holder.transaction()
        await batch.start()
        # The bid-worker's lock (bid_worker/store.py lock_offers).
        await holder.execute("SELECT 1 FROM offers WHERE id = $1 FOR NO KEY UPDATE", uuid.UUID(offer["id"]))
        # A bound on the wait only turns a hang into a failure here.
        status, placed, _ = await asyncio.wait_for(place_bid(world, bidder, offer["id"], 5), timeout=30)
        assert status == 202
        assert (
            await db.fetchval("SELECT status FROM bids WHERE id = $1", uuid.UUID(placed["id"])) == "pending"
        )
        await batch.rollback()
    finally:
        await holder.close()
