"""The worker's pure bid rule against the independent sequential model, exhaustively."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from auction_shared.events import BidPlaced
from bid_worker.rules import BidRejected, OfferState, apply_bids, judge
from tests.support.model import ModelBid, run_model

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
USER = uuid.uuid4()


def offer(price: str = "10.00", **changes) -> OfferState:
    base = dict(
        id=uuid.uuid4(),
        bid_price=Decimal(price),
        highest_bid_id=None,
        highest_bidder=None,
        bid_count=0,
        sold=False,
        go_live=NOW - timedelta(hours=1),
        ends_at=None,
    )
    base.update(changes)
    return OfferState(**base)


def bid(price: str, placed_at: datetime = NOW, name: str = "bidder") -> BidPlaced:
    return BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.uuid4(),
        user_id=USER,
        username=name,
        bid_price=Decimal(price),
        placed_at=placed_at,
    )


def test_a_higher_bid_leads_an_equal_or_lower_one_is_too_low():
    o = offer("10.00")
    assert judge(o, bid("10.01"), NOW) is None
    assert judge(o, bid("10.00"), NOW) is BidRejected.TOO_LOW
    assert judge(o, bid("9.99"), NOW) is BidRejected.TOO_LOW


def test_sold_or_ended_offers_reject_as_closed_and_early_bids_as_not_live():
    assert judge(offer(sold=True), bid("99"), NOW) is BidRejected.OFFER_CLOSED
    assert judge(offer(ends_at=NOW), bid("99"), NOW) is BidRejected.OFFER_CLOSED
    assert judge(offer(ends_at=NOW + timedelta(seconds=1)), bid("99"), NOW) is None
    future = offer(go_live=NOW + timedelta(minutes=5))
    assert judge(future, bid("99"), NOW) is BidRejected.NOT_LIVE


def test_the_previous_leader_from_the_database_is_outbid():
    earlier = uuid.uuid4()
    o = offer("10.00", highest_bid_id=earlier, highest_bidder="someone", bid_count=3)
    out = apply_bids(o, [bid("11"), bid("12")], NOW)
    assert out.outbid == [earlier]
    assert [d.status for d in out.decisions] == ["outbid", "leading"]
    assert out.offer.bid_count == 5 and out.offer.bid_price == Decimal("12")


def test_rejected_bids_count_but_do_not_change_the_leader():
    out = apply_bids(offer("10"), [bid("5"), bid("10")], NOW)
    assert not out.leader_changed
    assert out.offer.highest_bid_id is None and out.offer.bid_count == 2


prices = st.integers(min_value=1, max_value=40).map(lambda cents: Decimal(cents) / 4)


@settings(max_examples=300, deadline=None)
@given(start=prices, bid_prices=st.lists(prices, max_size=40))
def test_apply_bids_equals_the_sequential_model(start, bid_prices):
    bids = [bid(str(p), name=f"u{i % 3}") for i, p in enumerate(bid_prices)]
    out = apply_bids(offer(str(start)), bids, NOW)
    model = run_model(start, [ModelBid(str(b.bid_id), b.bid_price, b.username) for b in bids])
    assert out.offer.bid_price == model.price
    assert (
        str(out.offer.highest_bid_id) == str(model.leader)
        if model.leader
        else out.offer.highest_bid_id is None
    )
    assert out.offer.bid_count == model.count == len(bids)
    assert {str(d.bid.bid_id): d.status for d in out.decisions} == model.status
    assert sum(d.status == "leading" for d in out.decisions) == (1 if model.leader else 0)


@settings(max_examples=100, deadline=None)
@given(bid_prices=st.lists(prices, min_size=1, max_size=30), split=st.integers(min_value=0, max_value=30))
def test_splitting_a_stream_into_batches_changes_nothing(bid_prices, split):
    """The worker batches whatever has arrived; two batches must equal one."""
    bids = [bid(str(p)) for p in bid_prices]
    start = offer("1")
    whole = apply_bids(start, bids, NOW)
    first = apply_bids(start, bids[:split], NOW)
    second = apply_bids(first.offer, bids[split:], NOW)
    assert second.offer == whole.offer
    statuses = {d.bid.bid_id: d.status for d in first.decisions}
    statuses.update({d.bid.bid_id: d.status for d in second.decisions})
    for outbid in second.outbid:
        statuses[outbid] = "outbid"
    assert statuses == {d.bid.bid_id: d.status for d in whole.decisions}
