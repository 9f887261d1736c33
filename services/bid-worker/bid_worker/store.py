"""Every SQL statement of the bid-worker: one transaction applies one batch of one shard."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from auction_shared.events import BidPlaced
from auction_shared.shapes import OFFER_COLUMNS

from .rules import Decision, OfferState


async def lock_offers(
    conn: asyncpg.Connection, offer_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, OfferState], datetime]:
    """Lock the offers in id order (no deadlock with another locker) and read the clock."""
    rows = await conn.fetch(
        "SELECT id, bid_price, highest_bid_id, highest_bidder, bid_count, sold, go_live, ends_at,"
        " now() AS now FROM offers WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        list(offer_ids),
    )
    now = rows[0]["now"] if rows else await conn.fetchval("SELECT now()")
    offers = {
        r["id"]: OfferState(
            r["id"],
            r["bid_price"],
            r["highest_bid_id"],
            r["highest_bidder"],
            r["bid_count"],
            r["sold"],
            r["go_live"],
            r["ends_at"],
        )
        for r in rows
    }
    return offers, now


async def already_applied(conn: asyncpg.Connection, bid_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM bids WHERE id = ANY($1::uuid[])", list(bid_ids))
    return {r["id"] for r in rows}


async def insert_bids(conn: asyncpg.Connection, decisions: Sequence[Decision], worker: str) -> None:
    """Insert the judged bids in the order they were applied (seq follows that order)."""
    await conn.execute(
        "INSERT INTO bids (id, offer_id, user_id, username, bid_price, placed_at, status, reason,"
        " processed_by)"
        " SELECT id, offer_id, user_id, username, bid_price, placed_at, status, reason, $9"
        " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[],"
        " $6::timestamptz[], $7::text[], $8::text[]) WITH ORDINALITY"
        " AS b(id, offer_id, user_id, username, bid_price, placed_at, status, reason, n)"
        " ORDER BY n",
        [d.bid.bid_id for d in decisions],
        [d.bid.offer_id for d in decisions],
        [d.bid.user_id for d in decisions],
        [d.bid.username for d in decisions],
        [d.bid.bid_price for d in decisions],
        [d.bid.placed_at for d in decisions],
        [d.status for d in decisions],
        [str(d.reason) if d.reason else None for d in decisions],
        worker,
    )


async def mark_outbid(conn: asyncpg.Connection, bid_ids: Sequence[uuid.UUID]) -> None:
    if bid_ids:
        await conn.execute(
            "UPDATE bids SET status = 'outbid' WHERE id = ANY($1::uuid[]) AND status = 'leading'",
            list(bid_ids),
        )


async def update_offers(conn: asyncpg.Connection, offers: Sequence[OfferState]) -> list[asyncpg.Record]:
    """Write the new highest bids and counts; return the offers as they now are."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "UPDATE offers o SET bid_price = v.bid_price, highest_bid_id = v.highest_bid_id,"
        " highest_bidder = v.highest_bidder, bid_count = v.bid_count"
        " FROM unnest($1::uuid[], $2::numeric[], $3::uuid[], $4::text[], $5::int[])"
        " AS v(id, bid_price, highest_bid_id, highest_bidder, bid_count)"
        f" WHERE o.id = v.id RETURNING {', '.join('o.' + c.strip() for c in OFFER_COLUMNS.split(','))}",
        [o.id for o in offers],
        [o.bid_price for o in offers],
        [o.highest_bid_id for o in offers],
        [o.highest_bidder for o in offers],
        [o.bid_count for o in offers],
    )
    return rows


def unknown_offers(bids: Sequence[BidPlaced], offers: dict[uuid.UUID, OfferState]) -> list[BidPlaced]:
    return [b for b in bids if b.offer_id not in offers]
