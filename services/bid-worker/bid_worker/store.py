"""Every SQL statement of the bid-worker: one transaction applies one batch of one shard."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from auction_shared.events import BidPlaced
from auction_shared.rules import WON, Auction, EndReason, Leader, Rejection, Status, Terms
from auction_shared.shapes import BID_COLUMNS, OFFER_COLUMNS, qualified

# The column lists of the RETURNING clauses, under the aliases their statements use.
_BIDS_AS_T = qualified(BID_COLUMNS, "t")
_BIDS_AS_B = qualified(BID_COLUMNS, "b")
_OFFERS_AS_O = qualified(OFFER_COLUMNS, "o")


@dataclass(frozen=True)
class Locked:
    """An offer locked for this batch: its auction state, and its seller (who may not bid on it)."""

    auction: Auction
    seller_id: uuid.UUID


async def lock_offers(
    conn: asyncpg.Connection, offer_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, Locked], datetime]:
    """Lock the offers in id order (no deadlock with another locker, the offers service's accept
    included: it takes the same row lock) and read the database clock, which decides every close."""
    rows = await conn.fetch(
        "SELECT o.id, o.start_price, o.go_live, o.min_increment, o.reserve_price, o.soft_close_seconds,"
        " o.hard_ends_at, o.bid_price, o.ends_at, o.status, o.end_reason, o.highest_bid_id,"
        " o.highest_bidder, o.leader_id, o.leader_max_price, o.runner_up_max_price, o.bid_count,"
        " o.version, o.created_by_id, lb.bid_price AS leader_bid_price, now() AS now"
        " FROM offers o LEFT JOIN bids lb ON lb.id = o.highest_bid_id"
        " WHERE o.id = ANY($1::uuid[]) ORDER BY o.id FOR NO KEY UPDATE OF o",
        list(offer_ids),
    )
    now: datetime = rows[0]["now"] if rows else await conn.fetchval("SELECT now()")
    return {r["id"]: Locked(_auction(r), r["created_by_id"]) for r in rows}, now


def _auction(r: asyncpg.Record) -> Auction:
    leader = None
    if r["highest_bid_id"] is not None:
        bid_price = r["leader_bid_price"] or r["bid_price"]
        leader = Leader(
            bid_id=r["highest_bid_id"],
            user_id=r["leader_id"],
            username=r["highest_bidder"],
            bid_price=bid_price,
            max_price=r["leader_max_price"] or bid_price,
        )
    end_reason = r["end_reason"]
    return Auction(
        id=r["id"],
        terms=Terms(
            starting_price=r["start_price"],
            go_live=r["go_live"],
            min_increment=r["min_increment"],
            reserve_price=r["reserve_price"],
            soft_close_seconds=r["soft_close_seconds"],
            hard_ends_at=r["hard_ends_at"],
        ),
        price=r["bid_price"],
        ends_at=r["ends_at"],
        status=Status(r["status"]),
        end_reason=EndReason(end_reason) if end_reason is not None else None,
        leader=leader,
        runner_up_max=r["runner_up_max_price"],
        bid_count=r["bid_count"],
        version=r["version"],
    )


async def standing_bids(
    conn: asyncpg.Connection, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """Each (offer, bidder)'s standing bid, for the bidders of this batch: a new bid supersedes it."""
    if not pairs:
        return {}
    rows = await conn.fetch(
        "SELECT b.offer_id, b.user_id, b.id FROM bids b"
        " JOIN unnest($1::uuid[], $2::uuid[]) AS p(offer_id, user_id)"
        " ON b.offer_id = p.offer_id AND b.user_id = p.user_id"
        " WHERE b.status IN ('leading', 'outbid')",
        [o for o, _ in pairs],
        [u for _, u in pairs],
    )
    return {(r["offer_id"], r["user_id"]): r["id"] for r in rows}


async def already_applied(conn: asyncpg.Connection, bid_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The bids processed before (a pending row written by intake is not processed yet).

    A join on the ids, probed by the primary key: `id = ANY($1)` with a thousand ids was where
    PostgreSQL spent most of its time in runs where its CPU per bid rose tenfold (bench/findings.md,
    "one message per offer and loop turn")."""
    rows = await conn.fetch(
        "SELECT b.id FROM unnest($1::uuid[]) AS v(id) JOIN bids b ON b.id = v.id WHERE b.status <> 'pending'",
        list(bid_ids),
    )
    return {r["id"] for r in rows}


async def record_bids(
    conn: asyncpg.Connection,
    judged: Sequence[tuple[BidPlaced, str, Rejection | None]],
    worker: str,
) -> list[asyncpg.Record]:
    """Write the judged bids in the order they were applied (seq follows it), turning intake's
    pending rows into their final status; a row another worker already finished stays as it is."""
    return await _rows_of(
        conn,
        bool(judged),
        "INSERT INTO bids AS t (id, offer_id, user_id, username, bid_price, max_price, placed_at, status,"
        " reason, accepted, processed_by, processed_at)"
        " SELECT id, offer_id, user_id, username, bid_price, max_price, placed_at, status, reason,"
        " status = 'won', $10, now()"
        " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::numeric[],"
        " $7::timestamptz[], $8::text[], $9::text[]) WITH ORDINALITY"
        " AS b(id, offer_id, user_id, username, bid_price, max_price, placed_at, status, reason, n)"
        " ORDER BY n"
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,"
        " accepted = EXCLUDED.accepted, max_price = EXCLUDED.max_price,"
        " processed_by = EXCLUDED.processed_by, processed_at = EXCLUDED.processed_at, seq = DEFAULT"
        " WHERE t.status = 'pending'"
        f" RETURNING {_BIDS_AS_T}",
        [b.bid_id for b, _, _ in judged],
        [b.offer_id for b, _, _ in judged],
        [b.user_id for b, _, _ in judged],
        [b.username for b, _, _ in judged],
        [b.bid_price for b, _, _ in judged],
        [b.max_price for b, _, _ in judged],
        [b.placed_at for b, _, _ in judged],
        [status for _, status, _ in judged],
        [str(reason) if reason else None for _, _, reason in judged],
        worker,
    )


async def set_statuses(conn: asyncpg.Connection, statuses: Mapping[uuid.UUID, str]) -> list[asyncpg.Record]:
    """Move earlier bids to their new status (outbid, superseded, won); return them as they now are."""
    return await _rows_of(
        conn,
        bool(statuses),
        "UPDATE bids b SET status = v.status, accepted = (v.status = $3)"
        " FROM unnest($1::uuid[], $2::text[]) AS v(id, status)"
        " WHERE b.id = v.id AND b.status IN ('leading', 'outbid')"
        f" RETURNING {_BIDS_AS_B}",
        list(statuses),
        list(statuses.values()),
        WON,
    )


async def _rows_of(conn: asyncpg.Connection, anything: bool, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows `sql` returns, or none without a round trip when there is nothing to write."""
    if not anything:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def update_offers(conn: asyncpg.Connection, auctions: Sequence[Auction]) -> list[asyncpg.Record]:
    """Write the auctions' new state; return the offers as they now are.

    Guarded by `status = 'live'`: an offer that ended or sold is never written again, whatever a
    duplicated or redelivered message asks for."""
    if not auctions:
        return []
    leaders = [a.leader for a in auctions]
    rows: list[asyncpg.Record] = await conn.fetch(
        "UPDATE offers o SET bid_price = v.bid_price, highest_bid_id = v.highest_bid_id,"
        " highest_bidder = v.highest_bidder, leader_id = v.leader_id,"
        " leader_max_price = v.leader_max_price, runner_up_max_price = v.runner_up_max_price,"
        " bid_count = v.bid_count, ends_at = v.ends_at, status = v.status, end_reason = v.end_reason,"
        " sold = (v.status = 'sold'),"
        " ended_at = CASE WHEN v.status <> 'live' THEN now() END,"
        " sold_at = CASE WHEN v.status = 'sold' THEN now() END,"
        " version = v.version"
        " FROM unnest($1::uuid[], $2::numeric[], $3::uuid[], $4::text[], $5::uuid[], $6::numeric[],"
        " $7::numeric[], $8::int[], $9::timestamptz[], $10::text[], $11::text[], $12::bigint[])"
        " AS v(id, bid_price, highest_bid_id, highest_bidder, leader_id, leader_max_price,"
        " runner_up_max_price, bid_count, ends_at, status, end_reason, version)"
        f" WHERE o.id = v.id AND o.status = 'live' RETURNING {_OFFERS_AS_O}",
        [a.id for a in auctions],
        [a.price for a in auctions],
        [lead.bid_id if lead else None for lead in leaders],
        [lead.username if lead else None for lead in leaders],
        [lead.user_id if lead else None for lead in leaders],
        [lead.max_price if lead else None for lead in leaders],
        [a.runner_up_max for a in auctions],
        [a.bid_count for a in auctions],
        [a.ends_at for a in auctions],
        [str(a.status) for a in auctions],
        [str(a.end_reason) if a.end_reason else None for a in auctions],
        [a.version for a in auctions],
    )
    return rows
