"""Every SQL statement of the offers service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from auction_shared.shapes import BID_COLUMNS, OFFER_COLUMNS

from .rules import Filters, Sort

# The list's filters as one static statement: each is skipped when its parameter is null. A live
# offer whose go_live is still ahead is "scheduled" (the database's clock decides); a seller's name
# matches in any case, as usernames are unique in any case.
FILTERED = (
    " WHERE ($1::text IS NULL"
    " OR ($1 = 'scheduled' AND status = 'live' AND go_live > now())"
    " OR ($1 = 'live' AND status = 'live' AND go_live <= now())"
    " OR ($1 IN ('ended', 'sold') AND status = $1))"
    " AND ($2::text IS NULL OR lower(created_by) = lower($2))"
)


@dataclass(frozen=True)
class Terms:
    """A new offer's auction terms, as validated by the handler."""

    reserve_price: Decimal | None
    min_increment: Decimal | None
    soft_close_seconds: int
    max_extension_seconds: int
    hard_ends_at: datetime | None


async def insert_offer(
    conn: asyncpg.Connection,
    *,
    title: str,
    photo_url: str,
    price: Decimal,
    go_live: datetime,
    lifetime: int,
    ends_at: datetime | None,
    user_id: uuid.UUID,
    username: str,
    terms: Terms,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO offers (id, title, photo_url, start_price, bid_price, go_live, lifetime, ends_at,"
        " created_by_id, created_by, reserve_price, min_increment, soft_close_seconds,"
        " max_extension_seconds, hard_ends_at)"
        " VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        f" RETURNING {OFFER_COLUMNS}",
        uuid.uuid4(),
        title,
        photo_url,
        price,
        go_live,
        lifetime,
        ends_at,
        user_id,
        username,
        terms.reserve_price,
        terms.min_increment,
        terms.soft_close_seconds,
        terms.max_extension_seconds,
        terms.hard_ends_at,
    )


async def list_offers(
    conn: asyncpg.Pool | asyncpg.Connection, sort: Sort, filters: Filters, page: int, size: int
) -> tuple[list[asyncpg.Record], int]:
    direction = "DESC" if sort.descending else "ASC"
    # sort.column comes from a fixed whitelist (rules.SORT_COLUMNS), never from the request.
    rows = await conn.fetch(
        f"SELECT {OFFER_COLUMNS} FROM offers{FILTERED} ORDER BY {sort.column} {direction}, id {direction}"
        " LIMIT $3 OFFSET $4",
        filters.status,
        filters.created_by,
        size,
        page * size,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM offers{FILTERED}", filters.status, filters.created_by)
    return rows, total


async def get_offer(conn: asyncpg.Pool | asyncpg.Connection, offer_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1", offer_id)


async def seller_of_bid(
    conn: asyncpg.Pool | asyncpg.Connection, bid_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(offer id, seller id) of a recorded bid, read without any lock: an offer's seller never changes."""
    row = await conn.fetchrow(
        "SELECT o.id, o.created_by_id FROM bids b JOIN offers o ON o.id = b.offer_id WHERE b.id = $1", bid_id
    )
    return (row["id"], row["created_by_id"]) if row is not None else None


async def lock_for_sale(
    conn: asyncpg.Connection, offer_id: uuid.UUID, bid_id: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record, bool]:
    """Lock the offer (the bid-worker takes the same lock for each batch and for the close, so the
    three take turns), then read the bid; and whether its end has passed by the database's clock,
    read after the lock was granted."""
    offer = await conn.fetchrow(
        f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1 FOR NO KEY UPDATE", offer_id
    )
    past_end = await conn.fetchval("SELECT $1::timestamptz <= clock_timestamp()", offer["ends_at"])
    bid = await conn.fetchrow(f"SELECT {BID_COLUMNS} FROM bids WHERE id = $1", bid_id)
    return offer, bid, bool(past_end)


async def sell(
    conn: asyncpg.Connection, offer_id: uuid.UUID, bid_id: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The sale at the current price: the bid accepted, the offer sold (any unmet reserve waived)."""
    bid = await conn.fetchrow(
        f"UPDATE bids SET status = 'accepted', accepted = true WHERE id = $1 RETURNING {BID_COLUMNS}",
        bid_id,
    )
    offer = await conn.fetchrow(
        "UPDATE offers SET sold = true, sold_at = now(), status = 'sold', end_reason = 'accepted',"
        " ended_at = now(), version = version + 1"
        f" WHERE id = $1 RETURNING {OFFER_COLUMNS}",
        offer_id,
    )
    return offer, bid
