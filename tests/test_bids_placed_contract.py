"""`BidsPlaced`: several bids of one offer in one message, travelling as `bid.placed`."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest

from auction_shared.events import (
    MAX_BIDS_PER_MESSAGE,
    BidPlaced,
    BidsPlaced,
    MalformedEvent,
    decode,
    owners_of,
)


def bid(offer_id: uuid.UUID, price: int, max_price: int | None = None) -> BidPlaced:
    return BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=offer_id,
        user_id=uuid.uuid4(),
        username=f"b{price}",
        bid_price=Decimal(price),
        max_price=Decimal(max_price) if max_price is not None else None,
        placed_at=datetime.now(timezone.utc),
    )


def test_it_round_trips_its_bids_in_order_and_travels_as_bid_placed_to_the_offers_shard() -> None:
    offer = uuid.uuid4()
    message = BidsPlaced(offer_id=offer, bids=(bid(offer, 3), bid(offer, 2, 9), bid(offer, 5)))
    again = decode(message.encode())
    assert again == message
    assert isinstance(again, BidsPlaced) and [b.bid_price for b in again.bids] == [3, 2, 5]
    assert again.bids[1].max_price == 9
    assert message.routing_key == "bid.placed" and message.mandatory
    assert message.headers()["offer_id"] == str(offer)
    assert owners_of("bid.placed") == {BidPlaced, BidsPlaced}
    assert owners_of("bids.placed") == set()  # its type is not a routing key anyone publishes on


def test_it_refuses_no_bids_too_many_and_a_bid_of_another_offer() -> None:
    offer = uuid.uuid4()
    with pytest.raises(MalformedEvent, match="1 to"):
        BidsPlaced(offer_id=offer, bids=())
    with pytest.raises(MalformedEvent, match="1 to"):
        BidsPlaced(offer_id=offer, bids=(bid(offer, 2),) * (MAX_BIDS_PER_MESSAGE + 1))
    with pytest.raises(MalformedEvent, match=r"bids\[1\] is for another offer"):
        BidsPlaced(offer_id=offer, bids=(bid(offer, 2), bid(uuid.uuid4(), 3)))


@pytest.mark.parametrize(
    ("bids", "why"),
    [
        ("x", "bids is not a list"),
        ([], "1 to"),
        (["x"], r"bids\[0\] is not an object"),
        ([{"offer_id": "o"}], r"bids\[0\]: "),
    ],
)
def test_a_body_that_holds_no_valid_bids_is_malformed_with_the_index_at_fault(bids: object, why: str) -> None:
    raw = orjson.dumps(
        {
            "id": "m",
            "type": "bids.placed",
            "occurred_at": "t",
            "data": {"offer_id": str(uuid.uuid4()), "bids": bids},
        }
    )
    with pytest.raises(MalformedEvent, match=why):
        decode(raw)
