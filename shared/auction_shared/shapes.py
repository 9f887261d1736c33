"""The public JSON shapes of an offer and a bid, built from database rows.

Who looks matters: an offer's `reserve_price` (when it has one) is shown only to its seller, a bid's `max_price` only to
its bidder. Events are built with no viewer, so they never carry either.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .rules import min_next_bid

OFFER_COLUMNS = (
    "id, title, photo_url, bid_price, go_live, lifetime, ends_at, created_by_id, created_by, created_at,"
    " sold, highest_bid_id, highest_bidder, bid_count, status, end_reason, start_price, min_increment,"
    " reserve_price, leader_max_price, soft_close_seconds, hard_ends_at, version"
)
BID_COLUMNS = "id, offer_id, user_id, bid_price, max_price, username, placed_at, status, reason, accepted"


def qualified(columns: str, alias: str) -> str:
    """A column list above with each column prefixed by a table alias (`o.id, o.title, …`)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def offer_status(row: Mapping[str, Any], now: datetime | None = None) -> str:
    """scheduled (live, but before go_live), live, ended or sold."""
    status: str = row["status"]
    if status == "live" and row["go_live"] > (now or datetime.now(timezone.utc)):
        return "scheduled"
    return status


def offer_shape(row: Mapping[str, Any], viewer: uuid.UUID | None = None) -> dict[str, Any]:
    """The offer as `viewer` may see it (None: as anyone may, e.g. in an event)."""
    reserve = row["reserve_price"]
    leads = row["highest_bid_id"] is not None
    shape = {
        "id": str(row["id"]),
        "title": row["title"],
        "photo_url": row["photo_url"],
        "bid_price": row["bid_price"],
        "go_live": _time(row["go_live"]),
        "lifetime": row["lifetime"],
        "ends_at": _time(row["ends_at"]),
        "created_by": row["created_by"],
        "created_at": _time(row["created_at"]),
        "sold": row["sold"],
        "highest_bid_id": _id(row["highest_bid_id"]),
        "highest_bidder": row["highest_bidder"],
        "bid_count": row["bid_count"],
        "status": offer_status(row),
        "end_reason": row["end_reason"],
        "starting_price": row["start_price"],
        "min_next_bid": min_next_bid(row["start_price"], row["bid_price"], leads, row["min_increment"]),
        "min_increment": row["min_increment"],
        "reserve_met": None if reserve is None else leads and row["leader_max_price"] >= reserve,
        "soft_close_seconds": row["soft_close_seconds"],
        "hard_ends_at": _time(row["hard_ends_at"]),
        "version": row["version"],
    }
    if reserve is not None and viewer is not None and viewer == row["created_by_id"]:
        shape["reserve_price"] = reserve  # its seller's eyes only
    return shape


def bid_shape(row: Mapping[str, Any], viewer: uuid.UUID | None = None) -> dict[str, Any]:
    """The bid as `viewer` may see it: its `max_price` only to its own bidder."""
    return {
        "id": str(row["id"]),
        "offer_id": str(row["offer_id"]),
        "bid_price": row["bid_price"],
        "username": row["username"],
        "timestamp": _time(row["placed_at"]),
        "status": row["status"],
        "reason": row["reason"],
        "accepted": row["accepted"],
        "max_price": row["max_price"] if viewer is not None and viewer == row["user_id"] else None,
    }
