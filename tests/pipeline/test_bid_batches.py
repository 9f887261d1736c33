"""Several bids of one offer in one message (`BidsPlaced`): the worker applies them as if each had
come alone, one after the other, and whatever in such a message can never be applied goes to the
dead-letter queue with its reason, alone where it can, without stopping the shard."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson

from auction_shared.broker import Topology
from auction_shared.events import BidPlaced, BidsPlaced
from bid_worker.settings import WorkerSettings
from bid_worker.worker import BidWorker
from tests.pipeline.conftest import publish_raw, raw_bid
from tests.pipeline.test_bid_rules_live import create_offer
from tests.pipeline.test_worker_hardening import dead_letters
from tests.support.pipeline import bid_rows, offer_states, wait_applied


def prices_and_statuses(rows) -> list[tuple[str, str, str | None]]:
    return [(str(r["bid_price"]), r["status"], r["reason"]) for r in rows]


async def test_a_message_of_several_bids_ends_as_the_same_bids_sent_one_message_each(
    worker_control, raw_channel, offers_client, bids_client, make_user, settings
):
    """The independent model: the same bids, by the same bidders, each in its own message on a
    second offer with the same terms. Both offers must end in the same state, bid for bid."""
    owner = await make_user("own")
    terms = {"bid_price": 10, "min_increment": 1}
    batched = await create_offer(offers_client, owner, **terms)
    single = await create_offer(offers_client, owner, **terms)
    bidders = [uuid.uuid4() for _ in range(3)]
    plan = [
        (0, "10", None),
        (1, "11", "30"),
        (2, "12", None),
        (0, "40", "55"),
        (1, "41", None),
        (2, "5", None),
    ]

    def bids_for(offer_id: str) -> list[BidPlaced]:
        bids = []
        for who, price, cap in plan:
            bid = raw_bid(offer_id, f"bidder{who}", price, user_id=bidders[who])
            bids.append(replace(bid, max_price=Decimal(cap)) if cap is not None else bid)
        return bids

    in_one, one_each = bids_for(batched["id"]), bids_for(single["id"])
    message = BidsPlaced(offer_id=uuid.UUID(batched["id"]), bids=tuple(in_one))
    await publish_raw(raw_channel, settings, message.encode(), batched["id"], message.event_id)
    for bid in one_each:
        await publish_raw(raw_channel, settings, bid.encode(), single["id"], str(bid.bid_id))
    await worker_control.start()
    await wait_applied(settings.database_url, [str(b.bid_id) for b in [*in_one, *one_each]])

    rows = await bid_rows(settings.database_url, [batched["id"], single["id"]])
    assert prices_and_statuses(rows[batched["id"]]) == prices_and_statuses(rows[single["id"]])
    assert [r["id"] for r in rows[batched["id"]]] == [b.bid_id for b in in_one]  # in the message's order
    states = await offer_states(settings.database_url, [batched["id"], single["id"]])
    for field in ("bid_price", "bid_count", "status"):
        assert states[batched["id"]][field] == states[single["id"]][field], field
    assert states[batched["id"]]["highest_bid_id"] == in_one[3].bid_id
    assert states[single["id"]]["highest_bid_id"] == one_each[3].bid_id


async def test_hostile_messages_of_several_bids_are_dead_lettered_with_their_reason_and_the_shard_goes_on(
    worker, raw_channel, offers_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    other = await create_offer(offers_client, owner, bid_price=1)
    good = raw_bid(offer["id"], "good", "2").to_data()
    foreign = raw_bid(other["id"], "foreign", "3").to_data()
    future = raw_bid(offer["id"], "early", "3", placed_at=datetime.now(timezone.utc) + timedelta(hours=1))

    def envelope(data: object) -> bytes:
        return orjson.dumps(
            {
                "id": str(uuid.uuid4()),
                "type": "bids.placed",
                "occurred_at": "2026-12-07T00:00:00+00:00",
                "data": data,
            }
        )

    hostile = {
        "no list": (envelope({"offer_id": offer["id"], "bids": "many"}), "bids is not a list"),
        "empty": (envelope({"offer_id": offer["id"], "bids": []}), "bids must hold 1 to"),
        "too many": (envelope({"offer_id": offer["id"], "bids": [good] * 1001}), "bids must hold 1 to"),
        "not an object": (envelope({"offer_id": offer["id"], "bids": [good, 7]}), "bids[1] is not an object"),
        "a bad bid": (
            envelope({"offer_id": offer["id"], "bids": [good, {**good, "bid_price": "-1"}]}),
            "bids[1]:",
        ),
        "another offer's bid": (
            envelope({"offer_id": offer["id"], "bids": [good, foreign]}),
            "bids[1] is for another offer",
        ),
        "placed in the future": (
            BidsPlaced(
                offer_id=uuid.UUID(offer["id"]), bids=(raw_bid(offer["id"], "fine", "2"), future)
            ).encode(),
            "placed_at is in the future",
        ),
    }
    ids = {}
    for name, (body, _) in hostile.items():
        ids[name] = f"hostile-{uuid.uuid4()}"
        await publish_raw(raw_channel, settings, body, offer["id"], ids[name])
    misrouted = BidsPlaced(offer_id=uuid.UUID(offer["id"]), bids=(raw_bid(offer["id"], "moved", "2"),))
    await publish_raw(raw_channel, settings, misrouted.encode(), other["id"], misrouted.event_id)
    follower = raw_bid(offer["id"], "follower", "4")
    await publish_raw(raw_channel, settings, follower.encode(), offer["id"], str(follower.bid_id))

    await wait_applied(settings.database_url, [str(follower.bid_id)])
    reasons = await dead_letters(raw_channel, settings, {*ids.values(), misrouted.event_id})
    for name, (_, why) in hostile.items():
        assert why in reasons[ids[name]], (name, reasons[ids[name]])
    assert "offer_id header" in reasons[misrouted.event_id]
    rows = await bid_rows(settings.database_url, [offer["id"]])
    assert [r["username"] for r in rows[offer["id"]]] == ["follower"]  # nothing of a dead message applied


async def test_a_bid_of_several_that_can_never_be_applied_is_dead_lettered_alone_and_its_neighbours_apply(
    worker_control, raw_channel, offers_client, bids_client, make_user, settings
):
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    before = raw_bid(offer["id"], "before", "2")
    own = raw_bid(offer["id"], "self", "3", user_id=uuid.UUID(owner.user_id))  # the seller's own bid
    after = raw_bid(offer["id"], "after", "4")
    message = BidsPlaced(offer_id=uuid.UUID(offer["id"]), bids=(before, own, after))
    await publish_raw(raw_channel, settings, message.encode(), offer["id"], message.event_id)
    worker = await worker_control.start()
    await wait_applied(settings.database_url, [str(before.bid_id), str(after.bid_id)])

    reasons = await dead_letters(raw_channel, settings, {str(own.bid_id), message.event_id})
    assert reasons.keys() == {str(own.bid_id)}, reasons  # the bid alone, not its message
    assert "own offer" in reasons[str(own.bid_id)]
    rows = await bid_rows(settings.database_url, [offer["id"]])
    assert [(r["username"], r["status"]) for r in rows[offer["id"]]] == [
        ("before", "outbid"),
        ("after", "leading"),
    ]
    assert "dead_lettered=1" in repr(worker)
    # Acked with its batch: nothing is left in the shard queue once the worker has gone.
    await worker_control.stop()
    for name in Topology.from_settings(settings).shard_queues:
        queue = await raw_channel.declare_queue(name, passive=True)
        assert queue.declaration_result.message_count == 0, name


async def test_a_transaction_holds_at_most_max_batch_bids_however_many_each_message_holds(
    raw_channel, offers_client, bids_client, make_user, settings, tmp_path
):
    """Messages of several bids queued while no worker runs: the worker takes them in one batch of
    messages, and applies them in transactions of at most `max_batch` bids, in order."""
    owner = await make_user("own")
    offer = await create_offer(offers_client, owner, bid_price=1)
    messages = [
        BidsPlaced(
            offer_id=uuid.UUID(offer["id"]),
            bids=tuple(raw_bid(offer["id"], f"m{m}b{b}", str(10 * m + b + 2)) for b in range(3)),
        )
        for m in range(4)
    ]
    for message in messages:
        await publish_raw(raw_channel, settings, message.encode(), offer["id"], message.event_id)
    audit = tmp_path / "audit.jsonl"
    worker = BidWorker(settings, WorkerSettings(worker_id="small-batches", max_batch=7, audit_log=str(audit)))
    await worker.start()
    try:
        every = [b for m in messages for b in m.bids]
        await wait_applied(settings.database_url, [str(b.bid_id) for b in every])
    finally:
        await worker.stop()
    transactions = [json.loads(line)["bids"] for line in audit.read_text().splitlines()]
    assert all(len(t) <= 7 for t in transactions), [len(t) for t in transactions]
    assert [bid_id for t in transactions for _, bid_id in t] == [str(b.bid_id) for b in every]
    assert len(transactions) >= 2  # twelve bids, seven at most a transaction
