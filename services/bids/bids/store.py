"""Every SQL statement of the bids service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg

from auction_shared.events import BidPlaced
from auction_shared.jsonio import dumps, loads
from auction_shared.shapes import BID_COLUMNS, qualified

# How long an Idempotency-Key names its bid; afterwards the key is free again (and its row deleted).
KEY_RETENTION_SECONDS = 24 * 3600
_B_COLUMNS = qualified(BID_COLUMNS, "b")


async def find_request(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    """The bid an unexpired Idempotency-Key of this user names."""
    raw = await pool.fetchval(
        "SELECT bid::text FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2"
        " AND created_at > now() - make_interval(secs => $3)",
        user_id,
        key,
        KEY_RETENTION_SECONDS,
    )
    return loads(raw) if raw is not None else None


async def claim_request(pool: asyncpg.Pool, user_id: uuid.UUID, key: str, bid: dict[str, Any]) -> bool:
    """Record the bid under its Idempotency-Key, or take over an expired claim; False if the key
    names another bid. A claim is never released: a retry republishes the bid it names."""
    inserted = await pool.fetchval(
        "INSERT INTO bid_requests (user_id, idempotency_key, bid) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (user_id, idempotency_key) DO UPDATE SET bid = EXCLUDED.bid, created_at = now()"
        " WHERE bid_requests.created_at <= now() - make_interval(secs => $4)"
        " RETURNING true",
        user_id,
        key,
        dumps(bid).decode(),
        KEY_RETENTION_SECONDS,
    )
    return bool(inserted)


async def forget_expired_requests(pool: asyncpg.Pool) -> int:
    """Delete the Idempotency-Keys past their retention; how many went."""
    status = await pool.execute(
        "DELETE FROM bid_requests WHERE created_at <= now() - make_interval(secs => $1)",
        KEY_RETENTION_SECONDS,
    )
    return int(status.split()[-1])


class Executes(Protocol):
    """What the pending rows' writer needs: a pool, or a connection it holds (pending.py)."""

    async def execute(self, query: str, *args: object) -> str: ...


async def record_pending(pool: Executes, bids: Sequence[BidPlaced]) -> None:
    """The bids about to be queued, readable at once, in one statement (a retry's second record of a
    bid changes nothing)."""
    await pool.execute(
        "INSERT INTO bids (id, offer_id, user_id, username, bid_price, max_price, placed_at, status,"
        " processed_at)"
        " SELECT id, offer_id, user_id, username, bid_price, max_price, placed_at, 'pending', NULL"
        " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::numeric[],"
        " $7::timestamptz[]) AS b(id, offer_id, user_id, username, bid_price, max_price, placed_at)"
        " ON CONFLICT (id) DO NOTHING",
        [b.bid_id for b in bids],
        [b.offer_id for b in bids],
        [b.user_id for b in bids],
        [b.username for b in bids],
        [b.bid_price for b in bids],
        [b.max_price for b in bids],
        [b.placed_at for b in bids],
    )


async def forget_pending(pool: asyncpg.Pool, bid_id: uuid.UUID) -> None:
    """Remove the pending row of a bid whose publish failed (a decided bid keeps its row)."""
    await pool.execute("DELETE FROM bids WHERE id = $1 AND status = 'pending'", bid_id)


async def mark_queued(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> None:
    """The broker confirmed the bid this Idempotency-Key names: a replay need not publish it again."""
    await pool.execute(
        "UPDATE bid_requests SET queued = true WHERE user_id = $1 AND idempotency_key = $2", user_id, key
    )


async def is_queued(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT queued FROM bid_requests WHERE user_id = $1 AND idempotency_key = $2", user_id, key
        )
    )


async def is_decided(pool: asyncpg.Pool, bid_id: uuid.UUID) -> bool:
    """Whether the worker has judged the bid (its row is no longer pending): then it was queued."""
    return bool(await pool.fetchval("SELECT true FROM bids WHERE id = $1 AND status <> 'pending'", bid_id))


async def get_bid_for(pool: asyncpg.Pool, bid_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The bid, if `user_id` placed it or owns its offer."""
    return await pool.fetchrow(
        f"SELECT {_B_COLUMNS} FROM bids b JOIN offers o ON o.id = b.offer_id"
        " WHERE b.id = $1 AND (b.user_id = $2 OR o.created_by_id = $2)",
        bid_id,
        user_id,
    )


async def offer_exists(pool: asyncpg.Pool, offer_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval("SELECT true FROM offers WHERE id = $1", offer_id))


async def list_bids(
    pool: asyncpg.Pool, offer_id: uuid.UUID, page: int, size: int
) -> tuple[list[asyncpg.Record], int]:
    """The offer's processed bids (a pending one is not judged yet), highest first."""
    rows = await pool.fetch(
        f"SELECT {BID_COLUMNS} FROM bids WHERE offer_id = $1 AND status <> 'pending'"
        " ORDER BY bid_price DESC, seq ASC LIMIT $2 OFFSET $3",
        offer_id,
        size,
        page * size,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM bids WHERE offer_id = $1 AND status <> 'pending'", offer_id
    )
    return rows, total


async def list_own_bids(
    pool: asyncpg.Pool, user_id: uuid.UUID, page: int, size: int
) -> tuple[list[asyncpg.Record], int]:
    """The user's bids, pending ones too, newest first."""
    rows = await pool.fetch(
        f"SELECT {BID_COLUMNS} FROM bids WHERE user_id = $1 ORDER BY placed_at DESC, id LIMIT $2 OFFSET $3",
        user_id,
        size,
        page * size,
    )
    total = await pool.fetchval("SELECT count(*) FROM bids WHERE user_id = $1", user_id)
    return rows, total
