"""Pure rules about offers: when one goes live and closes, its auction terms, how lists sort and filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from auction_shared.events import MAX_USERNAME
from auction_shared.problems import Problem

# sortKey of GET /v1/offer -> column; `-` in front sorts descending.
SORT_COLUMNS = {"golive": "go_live", "bid_price": "bid_price", "title": "title", "created": "created_at"}
# status filter of GET /v1/offer; "scheduled" is a live offer whose go_live is still ahead.
STATUSES = ("scheduled", "live", "ended", "sold")
# How far ahead an offer may go live; it also keeps go_live + lifetime inside PostgreSQL's range.
MAX_GO_LIVE_AHEAD = timedelta(days=10 * 365)


def _bad(field: str, message: str) -> Problem:
    return Problem(400, f"{field} {message}", errors=[{"field": field, "message": message}])


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool


@dataclass(frozen=True)
class Filters:
    """What GET /v1/offer narrows the list to; None means "any"."""

    status: str | None = None
    created_by: str | None = None


def parse_sort(raw: str | None) -> Sort:
    key = raw or "golive"
    descending = key.startswith("-")
    column = SORT_COLUMNS.get(key.removeprefix("-"))
    if column is None:
        allowed = ", ".join(SORT_COLUMNS)
        raise Problem(
            400,
            f"sortKey must be one of {allowed}, optionally prefixed by '-'",
            errors=[{"field": "sortKey", "message": f"must be one of {allowed}"}],
        )
    return Sort(column, descending)


def parse_filters(query: Mapping[str, str]) -> Filters:
    """`status` and `created_by` of the list's query string, or a 400 problem naming the field."""
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise _bad("status", f"must be one of {', '.join(STATUSES)}")
    created_by = query.get("created_by")
    # No username is longer, and PostgreSQL text cannot hold U+0000: such a value names nobody.
    if created_by is not None and not (1 <= len(created_by) <= MAX_USERNAME and "\x00" not in created_by):
        raise _bad("created_by", f"must be a username of 1 to {MAX_USERNAME} characters")
    return Filters(status, created_by)


def term_errors(
    bid_price: Decimal, reserve_price: Decimal | None, lifetime: int, soft_close_seconds: int
) -> list[dict[str, str]]:
    """What is wrong between the fields of a new offer's terms (each field alone is already valid)."""
    errors = []
    if reserve_price is not None and reserve_price < bid_price:
        errors.append({"field": "reserve_price", "message": "must be at least bid_price"})
    if soft_close_seconds and not lifetime:
        errors.append(
            {"field": "soft_close_seconds", "message": "needs a lifetime above 0 (an end to extend)"}
        )
    return errors


def schedule(now: datetime, go_live: datetime | None, lifetime: int) -> tuple[datetime, datetime | None]:
    """(go_live, ends_at) of a new offer: go_live absent or past means now; lifetime 0 never ends."""
    if go_live is not None and go_live > now + MAX_GO_LIVE_AHEAD:
        raise _bad("go_live", "must be at most 10 years from now")
    start = now if go_live is None or go_live < now else go_live
    return start, (start + timedelta(seconds=lifetime) if lifetime else None)


def hard_end(
    ends_at: datetime | None, soft_close_seconds: int, max_extension_seconds: int
) -> datetime | None:
    """The latest a soft close may move the end to: the first end + the allowed extension with a
    soft close, the first end without one, none for an offer that never ends."""
    if ends_at is None:
        return None
    return ends_at + timedelta(seconds=max_extension_seconds) if soft_close_seconds else ends_at


def why_not_for_sale(offer: Mapping[str, Any], bid: Mapping[str, Any], past_end: bool) -> str | None:
    """Why the seller may not accept `bid` now (None: they may). Only the bid that leads right now,
    on an offer that is live and before its end, can be accepted."""
    if offer["status"] != "live":
        return f"the offer is already {offer['status']}"
    if past_end:
        return "the offer's end has passed"
    if bid["status"] != "leading" or offer["highest_bid_id"] != bid["id"]:
        if bid["status"] == "rejected":
            return f"the bid was rejected ({bid['reason']}); only the leading bid can be accepted"
        return f"the bid is {bid['status']}; only the leading bid can be accepted"
    return None
