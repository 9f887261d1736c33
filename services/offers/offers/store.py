"""Every SQL statement of the offers service."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import asyncpg

from auction_shared.shapes import BID_COLUMNS, OFFER_COLUMNS

from .rules import Sort


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
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO offers (id, title, photo_url, start_price, bid_price, go_live, lifetime, ends_at,"
        " created_by_id, created_by)"
        f" VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9) RETURNING {OFFER_COLUMNS}",
        uuid.uuid4(),
        title,
        photo_url,
        price,
        go_live,
        lifetime,
        ends_at,
        user_id,
        username,
    )


async def list_offers(
    conn: asyncpg.Pool | asyncpg.Connection, sort: Sort, page: int, size: int
) -> tuple[list[asyncpg.Record], int]:
    direction = "DESC" if sort.descending else "ASC"
    # sort.column comes from a fixed whitelist (rules.SORT_COLUMNS), never from the request.
    rows = await conn.fetch(
        f"SELECT {OFFER_COLUMNS} FROM offers ORDER BY {sort.column} {direction}, id {direction}"
        " LIMIT $1 OFFSET $2",
        size,
        page * size,
    )
    total = await conn.fetchval("SELECT count(*) FROM offers")
    return rows, total


async def get_offer(conn: asyncpg.Pool | asyncpg.Connection, offer_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1", offer_id)


async def lock_offer_of_bid(
    conn: asyncpg.Connection, bid_id: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record] | None:
    """Lock the bid's offer, then the bid (the worker's order too, so the two never deadlock)."""
    offer_id = await conn.fetchval("SELECT offer_id FROM bids WHERE id = $1", bid_id)
    if offer_id is None:
        return None
    offer = await conn.fetchrow(f"SELECT {OFFER_COLUMNS} FROM offers WHERE id = $1 FOR UPDATE", offer_id)
    bid = await conn.fetchrow(f"SELECT {BID_COLUMNS} FROM bids WHERE id = $1 FOR UPDATE", bid_id)
    return offer, bid


async def sell(
    conn: asyncpg.Connection, offer_id: uuid.UUID, bid_id: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record]:
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
