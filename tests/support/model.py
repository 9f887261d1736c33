"""The sequential model of an auction, written apart from the worker's code to check it against.

Given every bid of an offer in the order the offer's queue held them, compute what the offer and each
bid must look like once all are processed: the model test compares the database with this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class ModelBid:
    id: str
    price: Decimal
    username: str


@dataclass
class ModelOffer:
    start_price: Decimal
    price: Decimal = Decimal(0)
    leader: str | None = None
    leader_name: str | None = None
    count: int = 0
    status: dict[str, str] = field(default_factory=dict)
    reason: dict[str, str | None] = field(default_factory=dict)


def run_model(start_price: Decimal, bids_in_queue_order: list[ModelBid]) -> ModelOffer:
    """Each bid leads only if strictly above the current price; the leader it beats is outbid."""
    offer = ModelOffer(start_price=start_price, price=start_price)
    for bid in bids_in_queue_order:
        offer.count += 1
        if bid.price > offer.price:
            if offer.leader is not None:
                offer.status[offer.leader] = "outbid"
            offer.price, offer.leader, offer.leader_name = bid.price, bid.id, bid.username
            offer.status[bid.id] = "leading"
            offer.reason[bid.id] = None
        else:
            offer.status[bid.id] = "rejected"
            offer.reason[bid.id] = "too_low"
    return offer
