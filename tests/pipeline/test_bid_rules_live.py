"""Bid intake, the worker and the sale through the real apps, broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import aio_pika
import pytest

from auction_shared.broker import Topology
from auction_shared.events import BidPlaced
from tests.pipeline.conftest import publish_raw
from tests.support.pipeline import offer_states, wait_applied
from tests.support.waiting import wait_until


async def create_offer(offers_client, owner, **body):
    body.setdefault("title", "lot")
    body.setdefault("bid_price", 10)
    resp = await offers_client.post("/v1/offer", json=body, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def place(bids_client, who, offer_id, price, **headers):
    resp = await bids_client.post(
        "/v1/bid", json={"offer_id": offer_id, "bid_price": price}, headers={**who.headers, **headers}
    )
    return resp.status, await resp.json()


async def processed(bids_client, who, bid_id, settings):
    await wait_applied(settings.database_url, [bid_id], timeout=30)
    resp = await bids_client.get(f"/v1/bid/{bid_id}", headers=who.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_higher_bid_leads_and_the_previous_leader_is_outbid(
    worker, offers_client, bids_client, make_user, settings
):
    owner, alice, bob = await make_user("own"), await make_user("alice"), await make_user("bob")
    offer = await create_offer(offers_client, owner, bid_price=10)
    status, first = await place(bids_client, alice, offer["id"], 11.5)
    assert status == 202 and first["status"] == "pending" and first["bid_price"] == 11.5
    assert (await processed(bids_client, alice, first["id"], settings))["status"] == "leading"
    status, second = await place(bids_client, bob, offer["id"], 12)
    assert (await processed(bids_client, bob, second["id"], settings))["status"] == "leading"
    assert (await processed(bids_client, alice, first["id"], settings))["status"] == "outbid"
    status, equal = await place(bids_client, alice, offer["id"], 12)
    late = await processed(bids_client, alice, equal["id"], settings)
    assert late["status"] == "rejected" and late["reason"] == "too_low"
    resp = await offers_client.get(f"/v1/offer/{offer['id']}", headers=owner.headers)
    now = await resp.json()
    assert now["bid_price"] == 12 and now["highest_bidder"] == bob.username and now["bid_count"] == 3
    resp = await bids_client.get(f"/v1/offer/{offer['id']}/bids", headers=alice.headers)
    listed = await resp.json()
    assert [b["id"] for b in listed] == [
        second["id"],
        equal["id"],
        first["id"],
    ]  # highest first, ties by order
    assert resp.headers["X-Total-Count"] == "3"


async def test_bidding_on_your_own_or_an_unknown_offer(bids_client, offers_client, make_user):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner)
    assert (await place(bids_client, owner, offer["id"], 20))[0] == 403
    assert (await place(bids_client, owner, str(uuid.uuid4()), 20))[0] == 404
    assert (await place(bids_client, owner, "not-an-id", 20))[0] == 404


async def test_accepting_a_bid_sells_the_offer_and_closes_it(
    worker, offers_client, bids_client, make_user, settings
):
    owner, alice, bob = await make_user("own"), await make_user("alice"), await make_user("bob")
    offer = await create_offer(offers_client, owner, bid_price=10)
    _, low = await place(bids_client, alice, offer["id"], 5)
    _, high = await place(bids_client, bob, offer["id"], 15)
    await wait_applied(settings.database_url, [low["id"], high["id"]])

    # Only the creator may accept; a rejected bid cannot be accepted.
    assert (await offers_client.put(f"/v1/bid/{high['id']}", headers=bob.headers)).status == 403
    resp = await offers_client.put(f"/v1/bid/{low['id']}", headers=owner.headers)
    assert resp.status == 409 and "rejected" in (await resp.json())["detail"]

    resp = await offers_client.put(f"/v1/bid/{high['id']}", headers=owner.headers)
    assert resp.status == 200
    sold_bid = await resp.json()
    assert sold_bid["accepted"] is True and sold_bid["status"] == "accepted"
    offer_now = await (await offers_client.get(f"/v1/offer/{offer['id']}", headers=owner.headers)).json()
    assert offer_now["sold"] is True

    # A second accept on the sold offer is a conflict (via the alias too).
    assert (await offers_client.put(f"/v1/bids/{high['id']}", headers=owner.headers)).status == 409

    # New bids: 409 at intake once its short cache expires; a bid already queued is rejected.
    async def intake_refuses() -> bool:
        return (await place(bids_client, alice, offer["id"], 100))[0] == 409

    await wait_until(intake_refuses, 10, "intake to refuse bids on a sold offer")
    late = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer["id"]),
        user_id=uuid.uuid4(),
        username="late",
        bid_price=Decimal(500),
        placed_at=datetime.now(timezone.utc),
    )
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        await publish_raw(
            await connection.channel(publisher_confirms=True), settings, late.encode(), offer["id"]
        )
    finally:
        await connection.close()
    await wait_applied(settings.database_url, [str(late.bid_id)])
    states = await offer_states(settings.database_url, [offer["id"]])
    assert states[offer["id"]]["bid_price"] == 15 and states[offer["id"]]["highest_bid_id"] == uuid.UUID(
        high["id"]
    )
    resp = await bids_client.get(f"/v1/offer/{offer['id']}/bids", headers=owner.headers)
    rejected = [b for b in await resp.json() if b["id"] == str(late.bid_id)]
    assert rejected[0]["status"] == "rejected" and rejected[0]["reason"] == "offer_closed"


async def test_only_the_leading_bid_can_be_accepted_not_a_pending_or_an_outbid_one(
    worker_control, offers_client, bids_client, make_user, settings
):
    owner, alice, bob = await make_user("own"), await make_user("alice"), await make_user("bob")
    offer = await create_offer(offers_client, owner, bid_price=1)
    _, pending = await place(bids_client, alice, offer["id"], 2)
    # No worker yet: the bid is queued and reads pending at once, but a pending bid cannot be accepted.
    resp = await bids_client.get(f"/v1/bid/{pending['id']}", headers=alice.headers)
    assert resp.status == 200 and (await resp.json())["status"] == "pending"
    resp = await offers_client.put(f"/v1/bid/{pending['id']}", headers=owner.headers)
    assert resp.status == 409 and "pending" in (await resp.json())["detail"]
    await worker_control.start()
    _, higher = await place(bids_client, bob, offer["id"], 3)
    await wait_applied(settings.database_url, [pending["id"], higher["id"]])
    assert (await processed(bids_client, alice, pending["id"], settings))["status"] == "outbid"
    resp = await offers_client.put(f"/v1/bid/{pending['id']}", headers=owner.headers)
    assert resp.status == 409 and "outbid" in (await resp.json())["detail"]
    resp = await offers_client.put(f"/v1/bid/{higher['id']}", headers=owner.headers)
    assert resp.status == 200 and (await resp.json())["accepted"] is True


async def test_bids_before_go_live_are_rejected_not_live(
    worker, offers_client, bids_client, make_user, settings
):
    owner, alice = await make_user("own"), await make_user("alice")
    go_live = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    offer = await create_offer(offers_client, owner, bid_price=1, go_live=go_live.isoformat())
    assert datetime.fromisoformat(offer["go_live"]) == go_live
    _, early = await place(bids_client, alice, offer["id"], 5)
    result = await processed(bids_client, alice, early["id"], settings)
    assert result["status"] == "rejected" and result["reason"] == "not_live"
    states = await offer_states(settings.database_url, [offer["id"]])
    assert states[offer["id"]]["bid_price"] == 1 and states[offer["id"]]["bid_count"] == 1


async def test_idempotency_key_returns_the_first_bid_and_queues_nothing_new(
    worker, offers_client, bids_client, make_user, settings
):
    owner, alice, bob = await make_user("own"), await make_user("alice"), await make_user("bob")
    offer = await create_offer(offers_client, owner, bid_price=1)
    s1, first = await place(bids_client, alice, offer["id"], 5, **{"Idempotency-Key": "k-1"})
    s2, again = await place(bids_client, alice, offer["id"], 5, **{"Idempotency-Key": "k-1"})
    assert s1 == s2 == 202 and again == first
    # The same key from another user is another bid.
    _, bobs = await place(bids_client, bob, offer["id"], 6, **{"Idempotency-Key": "k-1"})
    assert bobs["id"] != first["id"]
    # A bid sent after both, on the same offer: once it is applied, anything queued before it is too.
    _, sentinel = await place(bids_client, bob, offer["id"], 8)
    await wait_applied(settings.database_url, [first["id"], bobs["id"], sentinel["id"]])
    states = await offer_states(settings.database_url, [offer["id"]])
    assert states[offer["id"]]["bid_count"] == 3


async def test_a_bid_is_visible_to_its_bidder_and_the_offer_owner_only(
    worker, offers_client, bids_client, make_user, settings
):
    owner, alice, eve = await make_user("own"), await make_user("alice"), await make_user("eve")
    offer = await create_offer(offers_client, owner)
    _, bid = await place(bids_client, alice, offer["id"], 50)
    await wait_applied(settings.database_url, [bid["id"]])
    assert (await bids_client.get(f"/v1/bid/{bid['id']}", headers=alice.headers)).status == 200
    assert (await bids_client.get(f"/v1/bids/{bid['id']}", headers=owner.headers)).status == 200
    resp = await bids_client.get(f"/v1/bid/{bid['id']}", headers=eve.headers)
    assert resp.status == 404 and resp.content_type == "application/problem+json"


async def test_the_same_message_delivered_twice_changes_nothing_the_second_time(
    worker, raw_channel, offers_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    bid = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer["id"]),
        user_id=uuid.uuid4(),
        username="twice",
        bid_price=Decimal("9.99"),
        placed_at=datetime.now(timezone.utc),
    )
    body = bid.encode()
    await publish_raw(raw_channel, settings, body, offer["id"], str(bid.bid_id))
    await wait_applied(settings.database_url, [str(bid.bid_id)])
    before = (await offer_states(settings.database_url, [offer["id"]]))[offer["id"]]
    # The copy, then a sentinel behind it on the same offer (same shard, same order).
    await publish_raw(raw_channel, settings, body, offer["id"], str(bid.bid_id))
    sentinel = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=bid.offer_id,
        user_id=uuid.uuid4(),
        username="sentinel",
        bid_price=Decimal("1.00"),
        placed_at=datetime.now(timezone.utc),
    )
    await publish_raw(raw_channel, settings, sentinel.encode(), offer["id"])
    await wait_applied(settings.database_url, [str(sentinel.bid_id)])
    after = (await offer_states(settings.database_url, [offer["id"]]))[offer["id"]]
    assert before["bid_count"] == 1 and after["bid_count"] == 2  # the sentinel only
    assert after["bid_price"] == Decimal("9.99") and after["highest_bid_id"] == bid.bid_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"id": "x", "type": "bid.placed"}',
        b'{"id":"1","type":"bid.placed","occurred_at":"t","data":{"bid_price":"-1"}}',
    ],
)
async def test_a_poison_message_goes_to_the_dead_letter_queue_and_the_worker_goes_on(
    worker, raw_channel, offers_client, make_user, settings, body
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    marker = uuid.uuid4().hex
    await publish_raw(raw_channel, settings, body, offer["id"], message_id=marker)
    after = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer["id"]),
        user_id=uuid.uuid4(),
        username="after",
        bid_price=Decimal(2),
        placed_at=datetime.now(timezone.utc),
    )
    await publish_raw(raw_channel, settings, after.encode(), offer["id"])
    await wait_applied(settings.database_url, [str(after.bid_id)])

    dead = await raw_channel.get_queue(Topology.from_settings(settings).dead_letter_queue)
    found = None
    for _ in range(100):
        message = await dead.get(no_ack=False, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        if message.message_id == marker:
            found = message
            break
    assert found is not None and found.body == body
