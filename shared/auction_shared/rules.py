"""The auction's rules as pure functions (no I/O): increments, proxy price, reserve, soft close, the end.

The bid-worker (the offer's single active consumer) applies them to every bid and every close in
the offer's queue order; the JSON shapes use them to show `min_next_bid`. Amounts are exact decimals
with two places; times are the intake stamp of a bid and the database clock of a close.

The state machine: `live` (shown `scheduled` before `go_live`) → `sold` (accepted, or closed with a
winner whose maximum reaches the reserve) or `ended` (closed unsold). An ended or sold offer never
changes again.

Over the usual module size on purpose: every rule of the auction is here and nowhere else, so the
whole of it reads in one place and is tested alone (tests/test_rules.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .events import BidPlaced, CloseOffer

# (lowest current price of the row, increment), highest row first.
INCREMENTS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("5000.00"), Decimal("100.00")),
    (Decimal("2500.00"), Decimal("50.00")),
    (Decimal("1000.00"), Decimal("25.00")),
    (Decimal("500.00"), Decimal("10.00")),
    (Decimal("250.00"), Decimal("5.00")),
    (Decimal("100.00"), Decimal("2.50")),
    (Decimal("25.00"), Decimal("1.00")),
    (Decimal("5.00"), Decimal("0.50")),
    (Decimal("1.00"), Decimal("0.25")),
    (Decimal("0.00"), Decimal("0.05")),
)


class Status(StrEnum):
    LIVE = "live"
    ENDED = "ended"
    SOLD = "sold"


class EndReason(StrEnum):
    ACCEPTED = "accepted"
    ENDED = "ended"
    NO_BIDS = "no_bids"
    RESERVE_NOT_MET = "reserve_not_met"


class Rejection(StrEnum):
    TOO_LOW = "too_low"
    OFFER_CLOSED = "offer_closed"
    NOT_LIVE = "not_live"


# Statuses of a bid the rules give (`pending` is intake's, `accepted` the seller's).
LEADING, OUTBID, REJECTED, SUPERSEDED, WON = "leading", "outbid", "rejected", "superseded", "won"


def increment(price: Decimal, fixed: Decimal | None = None) -> Decimal:
    """The least step above `price`: the offer's fixed `min_increment`, else the standard table."""
    if fixed is not None:
        return fixed
    for lowest, step in INCREMENTS:
        if price >= lowest:
            return step
    return INCREMENTS[-1][1]


def min_next_bid(
    starting_price: Decimal, price: Decimal, has_leader: bool, fixed: Decimal | None = None
) -> Decimal:
    """The least a new bid (from anyone but the leader) must offer: the starting price while nobody
    leads, else the current price plus the increment at that price."""
    return price + increment(price, fixed) if has_leader else starting_price


@dataclass(frozen=True)
class Terms:
    """What the seller set at creation; the rules never change it."""

    starting_price: Decimal
    go_live: datetime
    min_increment: Decimal | None = None
    reserve_price: Decimal | None = None
    soft_close_seconds: int = 0
    hard_ends_at: datetime | None = None


@dataclass(frozen=True)
class Leader:
    """The leading bidder, standing on the offer with their latest accepted bid."""

    bid_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    bid_price: Decimal
    max_price: Decimal


@dataclass(frozen=True)
class Auction:
    """An offer's auction state: everything a bid or a close reads and moves."""

    id: uuid.UUID
    terms: Terms
    price: Decimal
    ends_at: datetime | None
    status: Status = Status.LIVE
    end_reason: EndReason | None = None
    leader: Leader | None = None
    # The best maximum of the bidders other than the leader (S in the price formula).
    runner_up_max: Decimal | None = None
    bid_count: int = 0
    version: int = 1
    # Each bidder's latest accepted bid (user id → bid id), for the bidders this run may meet.
    standing: Mapping[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    @property
    def min_next_bid(self) -> Decimal:
        return min_next_bid(
            self.terms.starting_price, self.price, self.leader is not None, self.terms.min_increment
        )

    @property
    def reserve_met(self) -> bool | None:
        reserve = self.terms.reserve_price
        if reserve is None:
            return None
        return self.leader is not None and self.leader.max_price >= reserve


def price_of(terms: Terms, leader: Leader, runner_up_max: Decimal | None, price_before: Decimal) -> Decimal:
    """The price formula of docs/API.md, never below `price_before`, never above the leader's maximum."""
    price = max(terms.starting_price, leader.bid_price)
    if runner_up_max is not None:
        if leader.max_price == runner_up_max:
            price = max(price, leader.max_price)
        else:
            step = increment(runner_up_max, terms.min_increment)
            price = max(price, min(leader.max_price, runner_up_max + step))
    reserve = terms.reserve_price
    if reserve is not None and leader.max_price >= reserve:
        price = max(price, reserve)  # with the reserve met, the price is at least the reserve
    return max(price, price_before)


def judge(auction: Auction, bid: BidPlaced) -> Rejection | None:
    """Why `bid` cannot be accepted, by its intake time against the current `ends_at`; None if it can."""
    if auction.status is not Status.LIVE or (
        auction.ends_at is not None and bid.placed_at >= auction.ends_at
    ):
        return Rejection.OFFER_CLOSED
    if bid.placed_at < auction.terms.go_live:
        return Rejection.NOT_LIVE
    leader = auction.leader
    if leader is not None and bid.user_id == leader.user_id:
        # A leader may only raise their own maximum, never lower it.
        return None if bid.ceiling > leader.max_price else Rejection.TOO_LOW
    return None if bid.ceiling >= auction.min_next_bid else Rejection.TOO_LOW


@dataclass(frozen=True)
class Step:
    """What one bid did: its own status (and reason), and the earlier bids whose status it changed."""

    auction: Auction
    status: str
    reason: Rejection | None = None
    others: Mapping[uuid.UUID, str] = field(default_factory=dict)


def place(auction: Auction, bid: BidPlaced) -> Step:
    """Apply one bid to the auction (the next in the offer's queue order)."""
    reason = judge(auction, bid)
    if auction.status is not Status.LIVE:
        return Step(auction, REJECTED, reason)  # an ended or sold offer never changes, not even its count
    count = auction.bid_count + 1
    if reason is not None:
        return Step(_evolve(auction, bid_count=count), REJECTED, reason)
    others: dict[uuid.UUID, str] = {}
    old = auction.leader
    previous = auction.standing.get(bid.user_id)
    if previous is None and old is not None and old.user_id == bid.user_id:
        previous = old.bid_id
    if previous is not None:
        others[previous] = SUPERSEDED
    mine = Leader(bid.bid_id, bid.user_id, bid.username, bid.bid_price, bid.ceiling)
    if old is None or bid.user_id == old.user_id or bid.ceiling > old.max_price:
        leader, status = mine, LEADING
        # A new leader: the old one becomes the best of the others. The leader's own raise keeps S.
        runner_up = old.max_price if old is not None and old.user_id != bid.user_id else auction.runner_up_max
        if old is not None and old.user_id != bid.user_id:
            others[old.bid_id] = OUTBID
    else:
        # Accepted below the leader's maximum (ties to the earlier bid): outbid at once, but it
        # raises the price.
        leader, status = old, OUTBID
        runner_up = max(auction.runner_up_max or bid.ceiling, bid.ceiling)
    price = price_of(auction.terms, leader, runner_up, auction.price)
    ends_at = auction.ends_at
    if old is None or leader.user_id != old.user_id or price != auction.price:
        ends_at = extended_end(auction, bid.placed_at)
    moved = _evolve(
        auction,
        bid_count=count,
        leader=leader,
        runner_up_max=runner_up,
        price=price,
        ends_at=ends_at,
        standing={**auction.standing, bid.user_id: bid.bid_id},
    )
    return Step(moved, status, None, others)


def _evolve(auction: Auction, **changes: Any) -> Auction:
    """`dataclasses.replace` for the one call per bid: the same result (Auction has no __post_init__
    and no init-only field; tests/test_rules.py checks both agree), without replace's per-field
    checks and frozen __init__, which were a third of `place`."""
    if not changes.keys() <= _AUCTION_FIELDS:  # a misspelt field must fail, as replace would
        raise TypeError(f"Auction has no field {sorted(changes.keys() - _AUCTION_FIELDS)}")
    moved = object.__new__(Auction)
    moved.__dict__.update(auction.__dict__, **changes)
    return moved


_AUCTION_FIELDS = frozenset(f.name for f in fields(Auction))


def extended_end(auction: Auction, received: datetime) -> datetime | None:
    """Soft close: a bid received within W seconds before the end moves it to `received` + W, never
    past `hard_ends_at` and never earlier. Only called for bids that change the leader or the price."""
    window = auction.terms.soft_close_seconds
    ends_at = auction.ends_at
    if window <= 0 or ends_at is None or received < ends_at - timedelta(seconds=window):
        return ends_at
    moved = max(ends_at, received + timedelta(seconds=window))
    hard = auction.terms.hard_ends_at
    return min(hard, moved) if hard is not None else moved


def close(auction: Auction, now: datetime, grace: timedelta) -> Step | None:
    """End the auction if it is live and `now` (the database clock) is past `ends_at` + `grace`;
    None (nothing changes) otherwise, so a duplicated or early close is harmless."""
    if auction.status is not Status.LIVE or auction.ends_at is None or now < auction.ends_at + grace:
        return None
    leader = auction.leader
    if leader is None:
        return Step(replace(auction, status=Status.ENDED, end_reason=EndReason.NO_BIDS), "")
    if auction.reserve_met is False:
        return Step(replace(auction, status=Status.ENDED, end_reason=EndReason.RESERVE_NOT_MET), "")
    return Step(
        replace(auction, status=Status.SOLD, end_reason=EndReason.ENDED), "", None, {leader.bid_id: WON}
    )


@dataclass
class Outcome:
    """What a run of messages did to one auction, for the database and the events."""

    auction: Auction
    # Each new bid with its final status and reason, in the order applied.
    judged: list[tuple[BidPlaced, str, Rejection | None]] = field(default_factory=list)
    # Every bid whose status changed (new ones included), bid id → its status now.
    statuses: dict[uuid.UUID, str] = field(default_factory=dict)
    # The offer changed as the public sees it (price, leader, end, status): a new version.
    moved: bool = False

    @property
    def ended(self) -> bool:
        return self.auction.status is not Status.LIVE


def apply(
    auction: Auction, messages: Iterable[BidPlaced | CloseOffer], now: datetime, grace: timedelta
) -> Outcome:
    """Apply bids and closes in the offer's queue order; `version` grows by one if anything moved."""
    outcome = Outcome(auction)
    start = auction
    for message in messages:
        if isinstance(message, CloseOffer):
            step = close(outcome.auction, now, grace)
            if step is None:
                continue
        else:
            step = place(outcome.auction, message)
            outcome.judged.append((message, step.status, step.reason))
            outcome.statuses[message.bid_id] = step.status
        outcome.statuses.update(step.others)
        outcome.auction = step.auction
    end = outcome.auction
    outcome.moved = (
        end.price != start.price
        or (end.leader.bid_id if end.leader else None) != (start.leader.bid_id if start.leader else None)
        or end.ends_at != start.ends_at
        or end.status is not start.status
    )
    if outcome.moved:
        outcome.auction = replace(end, version=start.version + 1)
    return outcome
