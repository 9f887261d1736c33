"""The sequential model of an auction, written apart from the worker's code to check it against.

Given every bid of an offer in the order the offer's queue held them, compute what the offer and each
bid must look like once all are processed (docs/API.md, "Auction rules"): the model tests compare the
database with this. It is written from the contract, not from `auction_shared.rules`: it keeps every
bidder's maximum and recomputes the leader and the price from all of them after each bid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# The standard increment table in cents: (price from, step).
TABLE_CENTS = [
    (0, 5),
    (100, 25),
    (500, 50),
    (2500, 100),
    (10000, 250),
    (25000, 500),
    (50000, 1000),
    (100000, 2500),
    (250000, 5000),
    (500000, 10000),
]


def step(price: Decimal, fixed: Decimal | None) -> Decimal:
    if fixed is not None:
        return fixed
    cents = int(price * 100)
    return Decimal([s for lowest, s in TABLE_CENTS if cents >= lowest][-1]) / 100


@dataclass
class ModelBid:
    id: str
    price: Decimal
    username: str
    max_price: Decimal | None = None

    @property
    def top(self) -> Decimal:
        return self.max_price if self.max_price is not None else self.price


@dataclass
class ModelOffer:
    start_price: Decimal
    price: Decimal = Decimal(0)
    leader: str | None = None
    leader_name: str | None = None
    count: int = 0
    status: dict[str, str] = field(default_factory=dict)
    reason: dict[str, str | None] = field(default_factory=dict)
    # Each bidder's standing bid (their latest accepted one), in the order they were accepted.
    standing: dict[str, ModelBid] = field(default_factory=dict)
    accepted_at: dict[str, int] = field(default_factory=dict)


def run_model(
    start_price: Decimal,
    bids_in_queue_order: list[ModelBid],
    reserve: Decimal | None = None,
    fixed_increment: Decimal | None = None,
) -> ModelOffer:
    offer = ModelOffer(start_price=start_price, price=start_price)
    for n, bid in enumerate(bids_in_queue_order):
        offer.count += 1
        leader = offer.standing.get(offer.leader_name) if offer.leader_name else None
        if leader is not None and bid.username == offer.leader_name:
            ok = bid.top > leader.top
        elif leader is None:
            ok = bid.top >= start_price
        else:
            ok = bid.top >= offer.price + step(offer.price, fixed_increment)
        if not ok:
            offer.status[bid.id], offer.reason[bid.id] = "rejected", "too_low"
            continue
        offer.reason[bid.id] = None
        earlier = offer.standing.get(bid.username)
        if earlier is not None:
            offer.status[earlier.id] = "superseded"
        offer.standing[bid.username] = bid
        offer.accepted_at[bid.username] = n
        # The leader: the highest maximum, the earliest accepted between equal ones.
        name = min(offer.standing, key=lambda u: (-offer.standing[u].top, offer.accepted_at[u]))
        lead = offer.standing[name]
        others = [b.top for u, b in offer.standing.items() if u != name]
        candidates = [start_price, lead.price, offer.price]
        if others:
            second = max(others)
            candidates.append(
                lead.top if second == lead.top else min(lead.top, second + step(second, fixed_increment))
            )
        if reserve is not None and lead.top >= reserve:
            candidates.append(reserve)
        offer.price = max(candidates)
        for u, b in offer.standing.items():
            offer.status[b.id] = "leading" if u == name else "outbid"
        offer.leader, offer.leader_name = lead.id, name
    return offer
