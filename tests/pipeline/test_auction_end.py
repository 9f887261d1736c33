"""The end of an auction through the real worker: bids judged by their receipt time, then one close."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg

from auction_shared.events import BidUpdated, OfferSold
from tests.pipeline.conftest import publish_raw, raw_bid
from tests.pipeline.test_bid_rules_live import create_offer
from tests.reliability.tap import EventTap
from tests.support.pipeline import wait_applied
from tests.support.waiting import wait_until


async def final_state(
    database_url: str, offer_id: str
) -> tuple[asyncpg.Record, dict[uuid.UUID, asyncpg.Record]]:
    conn = await asyncpg.connect(database_url)
    try:
        offer = await conn.fetchrow("SELECT * FROM offers WHERE id = $1", uuid.UUID(offer_id))
        bids = await conn.fetch("SELECT * FROM bids WHERE offer_id = $1", uuid.UUID(offer_id))
    finally:
        await conn.close()
    return offer, {b["id"]: b for b in bids}


async def test_a_bid_received_before_the_end_counts_however_late_and_one_received_at_the_end_does_not(
    worker_control, raw_channel, offers_client, bids_client, make_user, settings
):
    # bids_client: the bids service declares the shard queues the raw bids go to before any worker runs.
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1, lifetime=1)
    ends_at = datetime.fromisoformat(offer["ends_at"])
    bidder, latecomer = uuid.uuid4(), uuid.uuid4()
    in_time = raw_bid(offer["id"], "intime", 5, ends_at - timedelta(milliseconds=1), bidder)
    too_late = raw_bid(offer["id"], "toolate", 50, ends_at, latecomer)
    # Queued as intake would have; no worker runs until the end has passed (the worker "paused").
    await publish_raw(raw_channel, settings, in_time.encode(), offer["id"])
    await publish_raw(raw_channel, settings, too_late.encode(), offer["id"])
    await wait_until(
        lambda: datetime.now(timezone.utc) > ends_at + timedelta(milliseconds=300), 10, "the end"
    )
    async with EventTap(settings, "offer.#", "user.#") as tap:
        await worker_control.start()
        await wait_applied(settings.database_url, [str(in_time.bid_id), str(too_late.bid_id)])

        async def closed() -> bool:
            row, _ = await final_state(settings.database_url, offer["id"])
            return row["status"] != "live"

        await wait_until(closed, 30, "the closer to end the offer")
        row, bids = await final_state(settings.database_url, offer["id"])
        assert (row["status"], row["end_reason"], row["sold"]) == ("sold", "ended", True)
        assert row["highest_bid_id"] == in_time.bid_id and row["bid_price"] == Decimal(5)
        assert (bids[in_time.bid_id]["status"], bids[in_time.bid_id]["accepted"]) == ("won", True)
        assert (bids[too_late.bid_id]["status"], bids[too_late.bid_id]["reason"]) == (
            "rejected",
            "offer_closed",
        )

        def ours(e: object) -> bool:  # the tap also hears the events of offers of earlier tests
            return isinstance(e, OfferSold) and e.offer_id == offer["id"]

        def told() -> bool:
            return sum(ours(e) for e in tap.events) >= 2 and any(
                isinstance(e, BidUpdated) and any(c.bid["status"] == "won" for c in e.changes)
                for e in tap.events
            )

        await wait_until(told, 30, "the sale announced")
    sold = [e for e in tap.first_copies() if isinstance(e, OfferSold) and e.offer_id == offer["id"]]
    assert sorted(str(e.recipient) for e in sold) == sorted(["None", owner.user_id])  # public + the seller's
    assert all(e.bid["id"] == str(in_time.bid_id) and e.offer["version"] == row["version"] for e in sold)
    private = [(e.recipient, c) for e in tap.first_copies() if isinstance(e, BidUpdated) for c in e.changes]
    mine = [(c.bid["status"], c.bid["max_price"]) for who, c in private if who == bidder]
    assert mine == [("leading", None), ("won", None)]
    theirs = [c.bid["status"] for who, c in private if who == latecomer]
    assert theirs == ["rejected"]
