"""A shard's batch gathers under load, and only then (the inbox alone, no broker)."""

from __future__ import annotations

import asyncio

from bid_worker.shards import Shard

# Far longer than any test may take: a gather that waited it out would hang the test, not pass it.
FOREVER = 3600.0


def _shard(waiting: int) -> Shard:
    shard = Shard(0, "q")
    for n in range(waiting):
        shard.inbox.put_nowait(n)
    return shard


async def test_a_lone_message_is_applied_at_once():
    shard = _shard(0)  # nothing behind the one in hand
    await asyncio.wait_for(shard.gather(10, FOREVER), timeout=5)
    assert shard.inbox.qsize() == 0


async def test_the_wait_ends_as_soon_as_a_full_batch_is_in():
    shard = _shard(1)

    async def arrive() -> None:
        for n in range(20):
            await asyncio.sleep(0)
            shard.inbox.put_nowait(n)

    arriving = asyncio.create_task(arrive())
    await asyncio.wait_for(shard.gather(10, FOREVER), timeout=5)
    assert shard.inbox.qsize() >= 10
    await arriving


async def test_a_full_inbox_does_not_wait():
    shard = _shard(10)
    await asyncio.wait_for(shard.gather(10, FOREVER), timeout=5)
    assert shard.inbox.qsize() == 10


async def test_without_more_arrivals_the_batch_goes_after_the_wait_with_what_came():
    shard = _shard(3)
    await shard.gather(10, 0.02)
    assert shard.inbox.qsize() == 3


async def test_a_hand_over_ends_the_wait():
    shard = _shard(2)
    gathering = asyncio.create_task(shard.gather(10, FOREVER))
    await asyncio.sleep(0.01)
    assert not gathering.done()
    shard.release_requested = True
    await asyncio.wait_for(gathering, timeout=5)


async def test_no_wait_when_turned_off():
    shard = _shard(2)
    await asyncio.wait_for(shard.gather(10, 0), timeout=5)
    assert shard.inbox.qsize() == 2
