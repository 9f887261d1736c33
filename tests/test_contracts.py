"""The event contracts: each message round-trips, owns its routing key, and refuses what it must."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from auction_shared.events import (
    CONTRACTS,
    MAX_BID_CHANGES,
    BidChange,
    BidPlaced,
    BidsPlaced,
    BidUpdated,
    CloseOffer,
    MalformedEvent,
    OfferCreated,
    OfferEnded,
    OfferSold,
    OfferUpdated,
    bid_changes,
    decode,
    owners_of,
)

OFFER = {"id": str(uuid.uuid4()), "title": "Swiss Shales", "bid_price": 12.5, "version": 3}
BID = {"id": str(uuid.uuid4()), "offer_id": OFFER["id"], "bid_price": 13, "max_price": None}
SELLER = uuid.uuid4()


def a_bid(**changes: object) -> BidPlaced:
    fields: dict[str, object] = {
        "bid_id": uuid.uuid4(),
        "offer_id": uuid.UUID(OFFER["id"]),
        "user_id": uuid.uuid4(),
        "username": "tariksetia",
        "bid_price": Decimal("13.00"),
        "max_price": Decimal("20.50"),
        "placed_at": datetime.now(timezone.utc),
    }
    fields.update(changes)
    return BidPlaced(**fields)  # type: ignore[arg-type]  # the test varies the types on purpose


EVERY_KIND = [
    OfferCreated(OFFER),
    OfferUpdated(OFFER),
    OfferSold(OFFER, bid=BID),
    OfferSold(OFFER, bid=BID, recipient=SELLER),
    OfferEnded(OFFER),
    OfferEnded(OFFER, recipient=SELLER),
    BidUpdated.one(uuid.uuid4(), {**BID, "max_price": 20.5}, OFFER),
    a_bid(),
    a_bid(max_price=None),
    CloseOffer(offer_id=uuid.UUID(OFFER["id"])),
    BidsPlaced(offer_id=uuid.UUID(OFFER["id"]), bids=(a_bid(), a_bid(max_price=None))),
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: f"{type(m).__name__}:{m.routing_key[:8]}")
def test_every_message_round_trips_and_owns_its_routing_key(message) -> None:
    again = decode(message.encode())
    assert again == message
    assert type(message) in owners_of(message.routing_key)


def test_every_contract_is_registered_and_named_by_its_type() -> None:
    assert {type(m) for m in EVERY_KIND} == set(CONTRACTS.values())


def test_private_events_go_to_their_recipient_and_public_ones_to_everyone() -> None:
    assert OfferSold(OFFER, bid=BID, recipient=SELLER).routing_key == f"user.{SELLER}"
    assert OfferSold(OFFER, bid=BID).routing_key == "offer.sold"
    assert owners_of("user.not-a-uuid") == set() == owners_of("offer.deleted")


def test_shard_work_carries_the_hash_header_and_must_reach_a_queue() -> None:
    bid = a_bid()
    assert bid.headers()["offer_id"] == OFFER["id"] and bid.mandatory
    assert bid.event_id == str(bid.bid_id)
    assert not OfferUpdated(OFFER).mandatory


def test_the_reserve_and_other_bidders_maxima_never_travel_in_public() -> None:
    with pytest.raises(MalformedEvent, match="reserve"):
        OfferUpdated({**OFFER, "reserve_price": 100})
    with pytest.raises(MalformedEvent, match="max_price"):
        OfferSold(OFFER, bid={**BID, "max_price": 99})


@pytest.mark.parametrize(
    "changes",
    [
        {"bid_price": Decimal("0")},
        {"bid_price": Decimal("1e12")},
        {"bid_price": Decimal("1.001")},
        {"bid_price": Decimal("NaN")},
        {"max_price": Decimal("12.99")},
        {"username": ""},
        {"username": "x" * 33},
        {"placed_at": datetime(2026, 1, 1)},
    ],
)
def test_a_bid_out_of_bounds_is_malformed(changes: dict[str, object]) -> None:
    with pytest.raises(MalformedEvent):
        a_bid(**changes)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "1", "type": "bid.placed"}',
        b'{"id": "1", "type": "offer.deleted", "occurred_at": "t", "data": {}}',
        b'{"id": "1", "type": "offer.created", "schema": 2, "occurred_at": "t", "data": {"id": "x"}}',
        b'{"id": "1", "type": "offer.created", "occurred_at": "t", "data": {"id": "not-a-uuid"}}',
        b'{"id":"1","type":"bid.placed","occurred_at":"t","data":{"bid_price":"-1"}}',
        b'{"id":"1","type":"bid.placed","occurred_at":"t","data":{"offer_id":"'
        + OFFER["id"].encode()
        + b'","bid_id":"'
        + OFFER["id"].encode()
        + b'","user_id":"'
        + OFFER["id"].encode()
        + b'","username":"u","bid_price":"1e400","placed_at":"2026-01-01T00:00:00+00:00"}}',
    ],
)
def test_anything_else_is_malformed_with_a_reason(body: bytes) -> None:
    with pytest.raises(MalformedEvent) as caught:
        decode(body)
    assert str(caught.value)


def test_one_bid_updated_carries_a_bidders_changes_in_order_and_at_most_a_hundred() -> None:
    bidder = uuid.uuid4()
    views = [
        ({**BID, "id": str(uuid.uuid4()), "status": s}, OFFER) for s in ("outbid", "leading", "rejected")
    ]
    message = bid_changes(bidder, [BidChange(b, o) for b, o in views])[0]
    again = decode(message.encode())
    assert isinstance(again, BidUpdated) and again.routing_key == f"user.{bidder}"
    assert [c.bid["status"] for c in again.changes] == ["outbid", "leading", "rejected"]

    many = bid_changes(bidder, [BidChange({**BID, "id": str(uuid.uuid4())}, OFFER)] * (MAX_BID_CHANGES + 1))
    assert [len(m.changes) for m in many] == [MAX_BID_CHANGES, 1]
    with pytest.raises(MalformedEvent, match="1 to 100 changes"):
        BidUpdated(bidder, ())
    with pytest.raises(MalformedEvent, match="1 to 100 changes"):
        BidUpdated(bidder, tuple(many[0].changes) + (many[1].changes[0],))
    with pytest.raises(MalformedEvent, match="reserve"):
        BidUpdated.one(bidder, BID, {**OFFER, "reserve_price": 5})


def test_a_bid_updated_of_the_earlier_one_bid_form_still_decodes() -> None:
    """A message an older worker left in a queue during an upgrade is one change, not a dead letter."""
    body = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "bid.updated",
            "schema": 1,
            "occurred_at": "2026-11-30T12:00:00+00:00",
            "data": {"recipient": str(SELLER), "bid": BID, "offer": OFFER},
        }
    ).encode()
    message = decode(body)
    assert isinstance(message, BidUpdated)
    assert [(c.bid["id"], c.offer["id"]) for c in message.changes] == [(BID["id"], OFFER["id"])]
    with pytest.raises(MalformedEvent, match="changes"):
        decode(body.replace(b'"bid":', b'"changes": 7, "x":'))


@pytest.mark.parametrize(
    "written",
    ["{id}", "{id_upper}", "{id_hex}", "{{{id}}}", "urn:uuid:{id}"],
)
def test_a_bid_names_its_ids_in_any_form_the_standard_library_reads(written: str) -> None:
    """Ids are parsed by asyncpg's C UUID; the forms only the standard library reads still decode."""
    ids = {"bid_id": uuid.uuid4(), "offer_id": uuid.UUID(OFFER["id"]), "user_id": uuid.uuid4()}
    data = a_bid(**ids).to_data()
    for name, value in ids.items():
        data[name] = written.format(id=value, id_upper=str(value).upper(), id_hex=value.hex)
    message = decode(json.dumps({"id": "1", "type": "bid.placed", "occurred_at": "t", "data": data}).encode())
    assert isinstance(message, BidPlaced)
    assert (message.bid_id, message.offer_id, message.user_id) == tuple(ids.values())
    assert {message.bid_id: 1}[ids["bid_id"]] == 1  # hashes as the standard library's UUID does


@pytest.mark.parametrize(
    "bad", ["", "g" * 32, "a" * 31, "a" * 33, " " + "a" * 32, "a-" * 16 + "aaaa", 7, None]
)
def test_a_bid_whose_id_is_no_uuid_is_malformed(bad: object) -> None:
    data = a_bid().to_data()
    data["user_id"] = bad
    body = json.dumps({"id": "1", "type": "bid.placed", "occurred_at": "t", "data": data}).encode()
    with pytest.raises(MalformedEvent, match="user_id is not a UUID"):
        decode(body)
