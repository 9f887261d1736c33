"""Every SQL statement of the bids service."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from auction_shared.jsonio import dumps, loads
from auction_shared.shapes import BID_COLUMNS


async def find_request(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    raw = await pool.fetchval(
        "SELECT bid::text FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2", user_id, key
    )
    return loads(raw) if raw is not None else None


async def claim_request(pool: asyncpg.Pool, user_id: uuid.UUID, key: str, bid: dict[str, Any]) -> bool:
    """Record the bid under its Idempotency-Key; False if the key was used already."""
    inserted = await pool.fetchval(
        "INSERT INTO bid_requests (user_id, idempotency_key, bid) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING true",
        user_id,
        key,
        dumps(bid).decode(),
    )
    return bool(inserted)


async def release_request(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> None:
    await pool.execute("DELETE FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2", user_id, key)


async def get_bid_for(pool: asyncpg.Pool, bid_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The bid, if `user_id` placed it or owns its offer."""
    return await pool.fetchrow(
        f"SELECT {', '.join('b.' + c.strip() for c in BID_COLUMNS.split(','))}"
        " FROM bids b JOIN offers o ON o.id = b.offer_id"
        " WHERE b.id = $1 AND (b.user_id = $2 OR o.created_by_id = $2)",
        bid_id,
        user_id,
    )


async def offer_exists(pool: asyncpg.Pool, offer_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval("SELECT true FROM offers WHERE id = $1", offer_id))


async def list_bids(
    pool: asyncpg.Pool, offer_id: uuid.UUID, page: int, size: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await pool.fetch(
        f"SELECT {BID_COLUMNS} FROM bids WHERE offer_id = $1"
        " ORDER BY bid_price DESC, seq ASC LIMIT $2 OFFSET $3",
        offer_id,
        size,
        page * size,
    )
    total = await pool.fetchval("SELECT count(*) FROM bids WHERE offer_id = $1", offer_id)
    return rows, total
