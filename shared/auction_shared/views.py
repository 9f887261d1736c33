"""The public JSON shapes of an offer and a bid (API.md), built from database rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

OFFER_COLUMNS = (
    "id, title, photo_url, bid_price, go_live, lifetime, ends_at, created_by, created_at, sold,"
    " highest_bid_id, highest_bidder, bid_count"
)
BID_COLUMNS = "id, offer_id, bid_price, username, placed_at, status, reason, accepted"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def offer_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
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
    }


def bid_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "offer_id": str(row["offer_id"]),
        "bid_price": row["bid_price"],
        "username": row["username"],
        "timestamp": _time(row["placed_at"]),
        "status": row["status"],
        "reason": row["reason"],
        "accepted": row["accepted"],
    }
