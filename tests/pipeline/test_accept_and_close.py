"""The seller's accept and the automatic close racing on one offer: the first in order wins, the other
changes nothing (both take the offer's row lock and act only on a live offer)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from auction_shared.events import OfferSold
from bid_worker.settings import WorkerSettings
from bid_worker.worker import BidWorker
from tests.pipeline.conftest import publish_raw, raw_bid
from tests.pipeline.test_bid_rules_live import create_offer
from tests.reliability.tap import EventTap
from tests.support.pipeline import wait_applied
from tests.support.waiting import wait_until

OFFER_COUNT = 8
GRACE = 0.3


async def test_accept_and_close_racing_end_each_offer_once_by_whichever_came_first(
    raw_channel, offers_client, bids_client, make_user, settings
):
    owner = await make_user("own")
    offers = [await create_offer(offers_client, owner, bid_price=1, lifetime=4) for _ in range(OFFER_COUNT)]
    bids = {}
    for offer in offers:
        bid = raw_bid(offer["id"], "bidder", 2)
        bids[offer["id"]] = bid
        await publish_raw(raw_channel, settings, bid.encode(), offer["id"], str(bid.bid_id))
    worker = BidWorker(
        settings, WorkerSettings(worker_id="racer", end_grace_seconds=GRACE, close_scan_seconds=0.05)
    )
    await worker.start()
    try:
        async with EventTap(settings, "offer.sold") as tap:
            await wait_applied(settings.database_url, [str(b.bid_id) for b in bids.values()])

            async def accept(offer: dict, delay: float) -> int:
                # Spread around the moment the close becomes due (ends_at + grace).
                start = datetime.fromisoformat(offer["ends_at"]) + timedelta(seconds=GRACE + delay)
                await wait_until(lambda: datetime.now(timezone.utc) >= start, 30, "the moment to accept")
                resp = await offers_client.put(f"/v1/bid/{bids[offer['id']].bid_id}", headers=owner.headers)
                return resp.status

            statuses = await asyncio.gather(*(accept(o, -1.8 + 0.3 * i) for i, o in enumerate(offers)))
            conn = await asyncpg.connect(settings.database_url)
            try:

                async def all_sold() -> bool:
                    return not await conn.fetchval(
                        "SELECT count(*) FROM offers WHERE id = ANY($1::uuid[]) AND status = 'live'",
                        [uuid.UUID(o["id"]) for o in offers],
                    )

                await wait_until(all_sold, 30, "every offer to end")
                await wait_until(
                    lambda: len({e.event_id for e in tap.events if isinstance(e, OfferSold)}) >= OFFER_COUNT,
                    30,
                    "every sale announced",
                )
                rows = {
                    str(r["id"]): r
                    for r in await conn.fetch(
                        "SELECT o.id, o.status, o.end_reason, b.status AS bid_status, b.accepted"
                        " FROM offers o JOIN bids b ON b.id = o.highest_bid_id WHERE o.id = ANY($1::uuid[])",
                        [uuid.UUID(o["id"]) for o in offers],
                    )
                }
            finally:
                await conn.close()
    finally:
        await worker.stop()
    outcomes = set()
    for offer, status in zip(offers, statuses, strict=True):
        row = rows[offer["id"]]
        assert status in (200, 409)
        if status == 200:  # the accept came first: the close found a sold offer and changed nothing
            assert (row["status"], row["end_reason"], row["bid_status"]) == ("sold", "accepted", "accepted")
        else:  # the close came first (or the end had passed): the accept changed nothing
            assert (row["status"], row["end_reason"], row["bid_status"]) == ("sold", "ended", "won")
        assert row["accepted"] is True
        outcomes.add(status)
        sales = {e.event_id for e in tap.events if isinstance(e, OfferSold) and e.offer_id == offer["id"]}
        assert len(sales) == 1, offer["id"]
    assert outcomes == {200, 409}, "the race should go both ways across the offers"
