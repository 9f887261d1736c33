"""The worst moment: the active bid-worker is killed (-9) as RabbitMQ drops, under a steady stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from auction_shared.config import Settings
from bid_worker import sharing
from tests.reliability.bidding import BidStream, assert_matches_model, bidders_and_offers, wait_applied
from tests.reliability.tap import EventTap
from tests.support.api import Api
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import applied_count, names_owning, shards_of
from tests.support.processes import Stack
from tests.support.waiting import wait_until


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection (not through the proxy) to see who applied what."""
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


async def test_worker_kill_9_and_broker_cut_together_lose_nothing_and_double_nothing(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Api, db: asyncpg.Connection
) -> None:
    bidders, offers = await bidders_and_offers(client, bidders=4, offers=4)
    # Names such that the worker killed owns shards with these offers' bids, by the sharing function.
    shard_of_offer = await shards_of(settings, list(offers))
    first_name, standby_name = names_owning(
        shard_of_offer, settings.bid_shards, "rel-crash-first", "rel-crash-standby"
    )
    firsts_offers = [
        o for o, s in shard_of_offer.items() if sharing.owner(s, [first_name, standby_name]) == first_name
    ]
    standbys_offers = [o for o in offers if o not in firsts_offers]
    first = faulty_stack.start_worker(first_name)
    faulty_stack.start_worker(standby_name)
    # Bound before the first bid, so it holds every bid in the shard queues' order.
    async with EventTap(settings, "bid.placed") as tap:
        async with BidStream(client, bidders, list(offers)) as stream:
            await stream.until(lambda s: len(s.accepted) >= 80, "80 bids before the crash")

            async def each_applies_its_own() -> bool:
                return (
                    await applied_count(db, first_name, firsts_offers) > 0
                    and await applied_count(db, standby_name, standbys_offers) > 0
                )

            # The worker about to die holds its own shards (the standby took the others over).
            await wait_until(each_applies_its_own, 60, "each worker applying bids of the shards it owns")
            # Batches in the killed worker's hands were neither acked nor (maybe) committed.
            first.kill()
            killed_at = await db.fetchval("SELECT coalesce(max(seq), 0) FROM bids")
            broker_proxy.cut()
            await stream.until(lambda s: s.refused >= 10, "bid intake to refuse during the cut")
            taken = len(stream.accepted)
            broker_proxy.restore()
            await stream.until(lambda s: len(s.accepted) >= taken + 80, "80 bids after the restore")
            # A fresh worker joins while bids still flow, as an orchestrator would restart one.
            faulty_stack.start_worker("rel-crash-replacement")
            await stream.until(lambda s: len(s.accepted) >= taken + 140, "bids after the restart")
        await wait_applied(settings, offers, tap, stream.accepted)
    await assert_matches_model(settings, offers, tap, stream.accepted)
    taken_over = sum(
        [
            await applied_count(db, name, firsts_offers, after_seq=killed_at)
            for name in (standby_name, "rel-crash-replacement")
        ]
    )
    assert taken_over > 0, "no other worker applied bids of the killed worker's shards after the kill"
