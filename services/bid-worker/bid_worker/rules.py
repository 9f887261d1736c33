"""The auction's pure rule: what a sequence of bids does to an offer. No I/O, tested exhaustively."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from auction_shared.events import BidPlaced


class BidRejected(StrEnum):
    TOO_LOW = "too_low"
    OFFER_CLOSED = "offer_closed"
    NOT_LIVE = "not_live"


@dataclass(frozen=True)
class OfferState:
    """The part of an offer that bids read and move."""

    id: uuid.UUID
    bid_price: Decimal
    highest_bid_id: uuid.UUID | None
    highest_bidder: str | None
    bid_count: int
    sold: bool
    go_live: datetime
    ends_at: datetime | None


@dataclass(frozen=True)
class Decision:
    bid: BidPlaced
    status: str  # "leading", "outbid" (led, then beaten in the same batch) or "rejected"
    reason: BidRejected | None


@dataclass(frozen=True)
class Outcome:
    offer: OfferState
    decisions: list[Decision]
    # Bids that led before this batch and lead no more.
    outbid: list[uuid.UUID]

    @property
    def leader_changed(self) -> bool:
        return any(d.status != "rejected" for d in self.decisions)


def judge(offer: OfferState, bid: BidPlaced, now: datetime) -> BidRejected | None:
    """Why `bid` cannot lead `offer` at `now`, or None if it leads."""
    if offer.sold or (offer.ends_at is not None and now >= offer.ends_at):
        return BidRejected.OFFER_CLOSED
    if bid.placed_at < offer.go_live:
        return BidRejected.NOT_LIVE
    # Strictly greater: of equal bids, the first one processed keeps the lead.
    if bid.bid_price <= offer.bid_price:
        return BidRejected.TOO_LOW
    return None


def apply_bids(offer: OfferState, bids: Iterable[BidPlaced], now: datetime) -> Outcome:
    """Apply `bids` to `offer` one at a time, in the order given (the queue's order)."""
    decisions: list[Decision] = []
    outbid: list[uuid.UUID] = []
    leading_at: int | None = None  # index in `decisions` of the bid that leads so far
    for bid in bids:
        reason = judge(offer, bid, now)
        if reason is None:
            if leading_at is not None:
                decisions[leading_at] = replace(decisions[leading_at], status="outbid")
            elif offer.highest_bid_id is not None:
                outbid.append(offer.highest_bid_id)
            leading_at = len(decisions)
            decisions.append(Decision(bid, "leading", None))
            offer = replace(
                offer, bid_price=bid.bid_price, highest_bid_id=bid.bid_id, highest_bidder=bid.username
            )
        else:
            decisions.append(Decision(bid, "rejected", reason))
        offer = replace(offer, bid_count=offer.bid_count + 1)
    return Outcome(offer, decisions, outbid)
