"""The pending writer's held connection: one connection across statements, a fresh one after it was
lost or a statement was cut short, never a pool that cannot close."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bids.pending import HeldConnection, PendingRecords
from tests.support.inprocess import accounts, new_offer

from .test_pending_records import a_bid

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAME = "held-connection-test"


async def backends(db: asyncpg.Connection, name: str) -> list[int]:
    rows = await db.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid", name)
    return [r["pid"] for r in rows]


@asynccontextmanager
async def held_on_own_pool(settings) -> AsyncIterator[tuple[HeldConnection, str]]:
    """A held connection on a pool of its own, whose backends carry a name a test can look for. The
    pool must close at the end: it would wait for ever for a connection never given back."""
    name = f"{NAME}-{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=0, max_size=2, server_settings={"application_name": name}
    )
    held = HeldConnection(pool)
    try:
        yield held, name
    finally:
        await held.close()
        await asyncio.wait_for(pool.close(), timeout=10)


async def test_statements_share_one_connection_and_a_refused_row_keeps_it(world, settings, db):
    owner, bidder = await accounts(world.auth, "held-owner", "held-bidder")
    offer = await new_offer(world, owner)
    async with held_on_own_pool(settings) as (held, name):
        records = PendingRecords(held)
        await records.record(a_bid(offer["id"], bidder.user_id, 10))
        first = await backends(db, name)
        orphan = a_bid(str(uuid.uuid4()), bidder.user_id, 11)  # no such offer: the database refuses it
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await records.record(orphan)
        for price in range(12, 20):
            await records.record(a_bid(offer["id"], bidder.user_id, price))
        assert await backends(db, name) == first and len(first) == 1
        await records.close()
    assert await db.fetchval("SELECT count(*) FROM bids WHERE offer_id = $1", uuid.UUID(offer["id"])) == 9


async def test_a_lost_connection_fails_one_write_and_the_next_takes_a_fresh_one(world, settings, db):
    owner, bidder = await accounts(world.auth, "held-owner2", "held-bidder2")
    offer = await new_offer(world, owner)
    before, after = a_bid(offer["id"], bidder.user_id, 10), a_bid(offer["id"], bidder.user_id, 12)
    async with held_on_own_pool(settings) as (held, name):
        records = PendingRecords(held)
        await records.record(before)
        [pid] = await backends(db, name)
        assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
        lost = a_bid(offer["id"], bidder.user_id, 11)
        # asyncpg reports a connection killed under a statement in more than one way.
        lost_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)
        with pytest.raises(lost_errors):
            await records.record(lost)
        await records.record(after)
        assert pid not in await backends(db, name)
        await records.close()
    rows = await db.fetch("SELECT id FROM bids WHERE offer_id = $1", uuid.UUID(offer["id"]))
    assert {r["id"] for r in rows} == {before.bid_id, after.bid_id}


async def test_a_statement_cut_short_leaves_no_busy_connection_behind(settings):
    async with held_on_own_pool(settings) as (held, _):
        slow = asyncio.create_task(held.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.5)
        # Sent while the first is in flight: it goes through the pool's other connection.
        assert await asyncio.wait_for(held.execute("SELECT 1"), timeout=10) == "SELECT 1"
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # The cancelled statement's connection is gone; the next statement runs at once on a new one.
        assert await asyncio.wait_for(held.execute("SELECT 2"), timeout=10) == "SELECT 1"
