"""Event announcing: every event a batch causes is written to the outbox in the batch's transaction.

The worker's outbox relay publishes them after the commit, so a crash between the commit and the
publish cannot lose one (the relay publishes what the database holds), and none goes out for a batch
that rolled back. The offers' events come first, then one private `bid.updated` per bidder with every
change of theirs in the batch (the offer events of those changes are out before it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from auction_shared.events import BidChange, Contract, OfferEnded, OfferSold, OfferUpdated, bid_changes
from auction_shared.outbox import OutboxRelay
from auction_shared.rules import WON, Outcome, Status
from auction_shared.shapes import BID_COLUMNS, OFFER_COLUMNS, bid_shape, offer_shape


async def announce(
    conn: asyncpg.Connection,
    relay: OutboxRelay,
    outcomes: Sequence[Outcome],
    offer_rows: Sequence[asyncpg.Record],
    bid_rows: Sequence[asyncpg.Record],
) -> None:
    """Write the events of a batch: offer.updated for every new version, offer.sold / offer.ended
    (public, and the seller's own copy) at the end, bid.updated to each bidder whose bid moved."""
    offers = {r["id"]: r for r in offer_rows}
    missing = sorted({r["offer_id"] for r in bid_rows} - offers.keys())
    if missing:  # bids rejected on an offer this batch did not change
        rows = await conn.fetch(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = ANY($1::uuid[])", missing)
        offers.update({r["id"]: r for r in rows})
    bids_of: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in bid_rows:
        bids_of.setdefault(row["offer_id"], []).append(row)
    events: list[Contract] = []
    # Each bidder's changes of the whole batch, in the order of their offers: one message per bidder.
    changes: dict[uuid.UUID, list[BidChange]] = {}
    moved = {o.auction.id for o in outcomes if o.moved}
    for offer_id in dict.fromkeys([*(o.auction.id for o in outcomes), *missing]):
        row = offers.get(offer_id)
        if row is None:
            continue
        shape = offer_shape(row)
        if offer_id in moved:
            events += await _offer_events(conn, row, shape, bids_of.get(offer_id, []))
        for bid in bids_of.get(offer_id, []):
            bidder = bid["user_id"]
            changes.setdefault(bidder, []).append(BidChange(bid_shape(bid, viewer=bidder), shape))
    for bidder, theirs in changes.items():
        events += bid_changes(bidder, theirs)
    await relay.add_all(conn, events)


async def _offer_events(
    conn: asyncpg.Connection, row: asyncpg.Record, shape: dict[str, Any], bids: Sequence[asyncpg.Record]
) -> list[Contract]:
    seller = row["created_by_id"]
    if row["status"] == Status.SOLD:
        winner = next((b for b in bids if b["status"] == WON), None)
        if winner is None:  # not moved by this batch (it cannot be, but the event must name it)
            winner = await conn.fetchrow(
                f"SELECT {BID_COLUMNS} FROM bids WHERE id = $1", row["highest_bid_id"]
            )
        public = bid_shape(winner)
        return [OfferSold(shape, bid=public), OfferSold(shape, bid=public, recipient=seller)]
    if row["status"] == Status.ENDED:
        return [OfferEnded(shape), OfferEnded(shape, recipient=seller)]
    return [OfferUpdated(shape)]
