"""Pure rules about offers: when one goes live and closes, how lists sort."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auction_shared.problems import Problem

# sortKey of GET /v1/offer -> column; `-` in front sorts descending.
SORT_COLUMNS = {"golive": "go_live", "bid_price": "bid_price", "title": "title", "created": "created_at"}
# How far ahead an offer may go live; it also keeps go_live + lifetime inside PostgreSQL's range.
MAX_GO_LIVE_AHEAD = timedelta(days=10 * 365)


@dataclass(frozen=True)
class Sort:
    column: str
    descending: bool


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


def schedule(now: datetime, go_live: datetime | None, lifetime: int) -> tuple[datetime, datetime | None]:
    """(go_live, ends_at) of a new offer: go_live absent or past means now; lifetime 0 never ends."""
    if go_live is not None and go_live > now + MAX_GO_LIVE_AHEAD:
        raise Problem(
            400,
            "go_live must be at most 10 years from now",
            errors=[{"field": "go_live", "message": "must be at most 10 years from now"}],
        )
    start = now if go_live is None or go_live < now else go_live
    return start, (start + timedelta(seconds=lifetime) if lifetime else None)
