"""The bids service's offer cache against the real database: concurrent misses share one query."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest

from auction_shared.config import Settings
from bids.offer_cache import TTL_SECONDS, OfferCache


class CountingPool:
    """The real pool, counting the queries that reach Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.queries = 0

    async def fetchrow(self, *args):  # type: ignore[no-untyped-def]  # passes any query through
        self.queries += 1
        return await self.pool.fetchrow(*args)


@pytest.fixture
async def pool(settings: Settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def insert_offer(pool: asyncpg.Pool, offer_id: uuid.UUID, owner: uuid.UUID) -> None:
    await pool.execute(
        "INSERT INTO offers (id, title, start_price, bid_price, go_live, created_by_id, created_by)"
        " VALUES ($1, 'cache lot', 1, 1, $2, $3, 'cache-owner')",
        offer_id,
        datetime.now(timezone.utc),
        owner,
    )


async def test_concurrent_misses_for_one_offer_share_one_query(pool):
    offer_id, owner = uuid.uuid4(), uuid.uuid4()
    await insert_offer(pool, offer_id, owner)
    counting = CountingPool(pool)
    cache = OfferCache(counting)  # type: ignore[arg-type]  # a counting stand-in for the pool
    facts = await asyncio.gather(*(cache.get(offer_id) for _ in range(50)))
    assert {f.created_by_id for f in facts} == {owner}
    assert counting.queries == 1


async def test_an_expired_entry_is_loaded_again_once(pool):
    offer_id = uuid.uuid4()
    await insert_offer(pool, offer_id, uuid.uuid4())
    now = [1000.0]
    counting = CountingPool(pool)
    cache = OfferCache(counting, clock=lambda: now[0])  # type: ignore[arg-type]  # a counting stand-in for the pool
    await cache.get(offer_id)
    await asyncio.gather(*(cache.get(offer_id) for _ in range(20)))
    assert counting.queries == 1
    now[0] += TTL_SECONDS + 0.1
    await asyncio.gather(*(cache.get(offer_id) for _ in range(20)))
    assert counting.queries == 2


async def test_an_unknown_offer_is_found_as_soon_as_it_exists(pool):
    offer_id, owner = uuid.uuid4(), uuid.uuid4()
    cache = OfferCache(pool)
    assert await asyncio.gather(*(cache.get(offer_id) for _ in range(10))) == [None] * 10
    await insert_offer(pool, offer_id, owner)
    facts = await cache.get(offer_id)
    assert facts is not None and facts.created_by_id == owner


async def test_one_caller_giving_up_does_not_fail_the_others(pool):
    offer_id, owner = uuid.uuid4(), uuid.uuid4()
    await insert_offer(pool, offer_id, owner)
    cache = OfferCache(pool)
    impatient = asyncio.ensure_future(cache.get(offer_id))
    patient = asyncio.ensure_future(cache.get(offer_id))
    await asyncio.sleep(0)  # both now wait on the one query
    impatient.cancel()
    facts = await patient
    assert facts is not None and facts.created_by_id == owner
    with pytest.raises(asyncio.CancelledError):
        await impatient
