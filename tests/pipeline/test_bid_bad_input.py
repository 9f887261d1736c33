"""Bad input to POST /v1/bid and PUT /v1/bid/{id}: always a 4xx problem, never a 5xx, and a bad bid
queues nothing (a tap on `bid.placed` sees only the good bid sent after it)."""

from __future__ import annotations

import uuid

import pytest

from tests.pipeline.test_bid_rules_live import create_offer
from tests.support.pipeline import BidTap

OFFER = "{offer}"
BAD_BIDS = [
    ({"bid_price": "10", "offer_id": OFFER}, 400),
    ({"bid_price": True, "offer_id": OFFER}, 400),
    ({"bid_price": None, "offer_id": OFFER}, 400),
    ({"bid_price": [10], "offer_id": OFFER}, 400),
    ({"bid_price": {"amount": 10}, "offer_id": OFFER}, 400),
    ({"bid_price": 0, "offer_id": OFFER}, 400),
    ({"bid_price": -5, "offer_id": OFFER}, 400),
    ({"bid_price": 10.001, "offer_id": OFFER}, 400),
    ({"bid_price": 1e12, "offer_id": OFFER}, 400),
    ({"bid_price": 10**30, "offer_id": OFFER}, 400),
    ({"bid_price": 1e-9, "offer_id": OFFER}, 400),
    ({"offer_id": OFFER}, 400),
    ({"bid_price": 10}, 400),
    ({"bid_price": 10, "offer_id": 12345}, 400),
    ({"bid_price": 10, "offer_id": None}, 400),
    ({"bid_price": 10, "offer_id": "not-a-uuid"}, 404),
    ({"bid_price": 10, "offer_id": "x" * 10_000}, 404),
    ({"bid_price": 10, "offer_id": str(uuid.uuid4())}, 404),
]
RAW_BODIES = [
    (b"{bad json", 400),
    (b"[]", 400),
    (b"null", 400),
    (b'{"bid_price": NaN, "offer_id": "x"}', 400),
    (b'{"bid_price": Infinity, "offer_id": "x"}', 400),
    (b'{"bid_price": 1e400, "offer_id": "x"}', 400),
    (b"", 400),
]


@pytest.fixture
async def target(offers_client, make_user):
    owner, bidder = await make_user("own"), await make_user("bidder")
    return await create_offer(offers_client, owner, bid_price=1), bidder


@pytest.fixture
async def tap(settings, bids_client):
    """Every bid queued from now on (the bids app, started first, declared what the tap binds to)."""
    async with BidTap(settings) as tap:
        yield tap


async def assert_nothing_else_queued(bids_client, tap, offer, bidder) -> None:
    """A good bid sent after the bad request is queued alone. One bids app publishes on one channel,
    in order: anything the bad request had queued would reach the tap before the good bid."""
    ok = await bids_client.post(
        "/v1/bid", json={"bid_price": 2, "offer_id": offer["id"]}, headers=bidder.headers
    )
    assert ok.status == 202
    await tap.wait_for(1)
    assert tap.seen == [(await ok.json())["id"]]


def fill(body: dict, offer_id: str) -> dict:
    return {k: (offer_id if v == OFFER else v) for k, v in body.items()}


@pytest.mark.parametrize("body, status", BAD_BIDS)
async def test_bad_bid_bodies(bids_client, target, tap, body, status):
    offer, bidder = target
    resp = await bids_client.post("/v1/bid", json=fill(body, offer["id"]), headers=bidder.headers)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == status
    await assert_nothing_else_queued(bids_client, tap, offer, bidder)


@pytest.mark.parametrize("raw, status", RAW_BODIES)
async def test_bad_raw_bid_bodies(bids_client, target, tap, raw, status):
    offer, bidder = target
    resp = await bids_client.post(
        "/v1/bid", data=raw, headers={**bidder.headers, "Content-Type": "application/json"}
    )
    assert resp.status == status and resp.content_type == "application/problem+json"
    await assert_nothing_else_queued(bids_client, tap, offer, bidder)


async def test_wrong_content_type_and_oversized_bid_body(bids_client, target, tap):
    offer, bidder = target
    resp = await bids_client.post(
        "/v1/bid",
        data=f'{{"bid_price": 2, "offer_id": "{offer["id"]}"}}',
        headers={**bidder.headers, "Content-Type": "text/plain"},
    )
    assert resp.status == 415 and resp.content_type == "application/problem+json"
    huge = b'{"bid_price": 2, "offer_id": "' + b"x" * 70_000 + b'"}'
    resp = await bids_client.post(
        "/v1/bid", data=huge, headers={**bidder.headers, "Content-Type": "application/json"}
    )
    assert resp.status == 413 and resp.content_type == "application/problem+json"
    await assert_nothing_else_queued(bids_client, tap, offer, bidder)


@pytest.mark.parametrize("key", ["", "x" * 201, "é-key", "tab\tkey"])
async def test_bad_idempotency_keys(bids_client, target, tap, key):
    offer, bidder = target
    resp = await bids_client.post(
        "/v1/bid",
        json={"bid_price": 2, "offer_id": offer["id"]},
        headers={**bidder.headers, "Idempotency-Key": key},
    )
    assert resp.status == 400 and resp.content_type == "application/problem+json"
    await assert_nothing_else_queued(bids_client, tap, offer, bidder)


@pytest.mark.parametrize(
    "bid_id, status",
    [("not-a-uuid", 404), (str(uuid.uuid4()), 404), ("x" * 5000, 404), ("%00", 404), ("1", 404)],
)
async def test_bad_accept_targets(offers_client, make_user, bid_id, status):
    owner = await make_user("own")
    resp = await offers_client.put(f"/v1/bid/{bid_id}", headers=owner.headers)
    assert resp.status == status and resp.content_type == "application/problem+json"


async def test_accept_ignores_any_body(offers_client, make_user):
    owner = await make_user("own")
    resp = await offers_client.put(
        f"/v1/bid/{uuid.uuid4()}",
        data=b"{not json",
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert resp.status == 404 and resp.content_type == "application/problem+json"
