"""The auction rules alone (auction_shared.rules): the table, the price, ties, reserve, soft close, the end."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction_shared.events import BidPlaced, CloseOffer
from auction_shared.rules import (
    Auction,
    EndReason,
    Rejection,
    Status,
    Terms,
    _evolve,
    apply,
    close,
    increment,
    place,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
END = T0 + timedelta(hours=1)
GRACE = timedelta(seconds=2)
USERS = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in "ABCDEFGH"}


def d(value: str | int | float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def auction(start: str = "10.00", ends_at: datetime | None = END, **terms) -> Auction:
    return Auction(
        id=uuid.uuid4(),
        terms=Terms(starting_price=d(start), go_live=T0, **{"hard_ends_at": ends_at, **terms}),
        price=d(start),
        ends_at=ends_at,
    )


def bid(who: str, price, max_price=None, at: datetime = T0 + timedelta(minutes=1)) -> BidPlaced:
    return BidPlaced(
        offer_id=uuid.uuid4(),
        bid_id=uuid.uuid4(),
        user_id=USERS[who],
        username=who,
        bid_price=d(price),
        max_price=d(max_price) if max_price is not None else None,
        placed_at=at,
    )


# --- the increment table: both sides of every row boundary, in cents --------------------------------

BOUNDARIES = [
    ("0.01", "0.05"),
    ("0.99", "0.05"),
    ("1.00", "0.25"),
    ("4.99", "0.25"),
    ("5.00", "0.50"),
    ("24.99", "0.50"),
    ("25.00", "1.00"),
    ("99.99", "1.00"),
    ("100.00", "2.50"),
    ("249.99", "2.50"),
    ("250.00", "5.00"),
    ("499.99", "5.00"),
    ("500.00", "10.00"),
    ("999.99", "10.00"),
    ("1000.00", "25.00"),
    ("2499.99", "25.00"),
    ("2500.00", "50.00"),
    ("4999.99", "50.00"),
    ("5000.00", "100.00"),
    ("999999999999.99", "100.00"),
]


@pytest.mark.parametrize(("price", "step"), BOUNDARIES)
def test_every_row_boundary_of_the_increment_table(price: str, step: str) -> None:
    assert increment(Decimal(price)) == Decimal(step)


def test_a_fixed_min_increment_replaces_the_table() -> None:
    assert increment(Decimal("4999.99"), Decimal("0.01")) == Decimal("0.01")
    a = auction("10.00", min_increment=d("3.00"))
    a = place(a, bid("A", 10)).auction
    assert a.min_next_bid == d(13)


# --- the worked example of docs/API.md, step by step ----------------------------------------------------


def test_the_worked_example_step_by_step() -> None:
    a = auction("10.00")
    steps = [
        (bid("A", 10, 50), "leading", "10.00", "A"),
        (bid("B", "10.50", 30), "outbid", "31.00", "A"),
        (bid("C", 32, 50), "outbid", "50.00", "A"),
        (bid("C", 51, 60), "leading", "51.00", "C"),
        (bid("A", 52, "60.50"), "leading", "60.50", "A"),
    ]
    placed = []
    for b, status, price, leader in steps:
        assert b.bid_price == a.min_next_bid, "each bid is sent at the min_next_bid of the moment"
        step = place(a, b)
        a = step.auction
        placed.append((b, step))
        assert (step.status, a.price, a.leader and a.leader.username) == (status, d(price), leader)
    # C's first bid is superseded by C's second; A's first bid is outbid by C, then superseded by A.
    c_first, c_second = placed[2][0].bid_id, placed[3][0].bid_id
    a_first = placed[0][0].bid_id
    assert placed[3][1].others == {c_first: "superseded", a_first: "outbid"}
    assert placed[4][1].others == {a_first: "superseded", c_second: "outbid"}


def test_with_straight_bids_only_the_price_is_the_leading_bid() -> None:
    a = auction("1.00")
    for who, price in [("A", "1.00"), ("B", "1.25"), ("A", "7.00"), ("C", "7.50")]:
        a = place(a, bid(who, price)).auction
        assert a.price == d(price) and a.leader is not None and a.leader.bid_price == d(price)


# --- ties, the leader's raise, too low ----------------------------------------------------------------


def test_equal_maxima_go_to_the_earlier_bid_at_that_maximum() -> None:
    a = place(auction("10.00"), bid("A", 10, 40)).auction
    step = place(a, bid("B", 12, 40))
    assert step.status == "outbid" and step.auction.leader.username == "A"
    assert step.auction.price == d(40)


def test_a_leader_raising_their_max_without_a_price_change_moves_nothing_public() -> None:
    a = place(auction("10.00"), bid("A", 10, 20)).auction
    first = a.leader.bid_id
    step = place(a, bid("A", 10, 80))
    assert step.status == "leading" and step.others == {first: "superseded"}
    assert step.auction.price == d(10) and step.auction.leader.max_price == d(80)
    # Lowering or repeating the maximum is refused.
    for ceiling in (80, 50):
        refused = place(step.auction, bid("A", 10, ceiling))
        assert (refused.status, refused.reason) == ("rejected", Rejection.TOO_LOW)
        assert refused.auction.leader == step.auction.leader


def test_below_min_next_bid_is_too_low_and_changes_nothing_but_the_count() -> None:
    a = place(auction("10.00"), bid("A", 10)).auction
    step = place(a, bid("B", "10.49"))
    assert (step.status, step.reason) == ("rejected", Rejection.TOO_LOW)
    assert replace(step.auction, bid_count=a.bid_count) == a
    assert place(auction("10.00"), bid("A", "9.99")).reason == Rejection.TOO_LOW


def test_a_proxy_bid_below_min_next_bid_with_a_max_above_it_counts() -> None:
    a = place(auction("10.00"), bid("A", 10)).auction
    step = place(a, bid("B", "0.50", 20))
    assert step.status == "leading" and step.auction.price == d("10.50")


# --- reserve ------------------------------------------------------------------------------------------


def test_the_reserve_jumps_the_price_once_the_leaders_max_reaches_it() -> None:
    a = auction("10.00", reserve_price=d(100))
    a = place(a, bid("A", 10, 99.99)).auction
    assert a.price == d(10) and a.reserve_met is False
    a = place(a, bid("B", "10.50", 100)).auction
    assert a.leader.username == "B" and a.reserve_met is True  # >=: exactly the reserve meets it
    assert a.price == d(100)


def test_a_leader_reaching_the_reserve_alone_jumps_to_it() -> None:
    a = place(auction("10.00", reserve_price=d(50)), bid("A", 10, 20)).auction
    a = place(a, bid("A", 10, 500)).auction
    assert a.price == d(50) and a.reserve_met is True


# --- time: the receipt stamp against ends_at; soft close ----------------------------------------------


def test_a_bid_counts_if_received_before_ends_at_however_late_it_is_judged() -> None:
    a = auction("10.00")
    assert place(a, bid("A", 10, at=END - timedelta(microseconds=1))).status == "leading"
    assert place(a, bid("A", 10, at=END)).reason == Rejection.OFFER_CLOSED
    assert place(a, bid("A", 10, at=T0 - timedelta(seconds=1))).reason == Rejection.NOT_LIVE


def soft(window: int = 60, extension: int = 120) -> Auction:
    return auction("10.00", soft_close_seconds=window, hard_ends_at=END + timedelta(seconds=extension))


def test_soft_close_moves_the_end_to_receipt_plus_the_window() -> None:
    a = soft()
    step = place(a, bid("A", 10, at=END - timedelta(seconds=10)))
    assert step.auction.ends_at == END + timedelta(seconds=50)
    # Outside the window: no move.
    assert place(a, bid("A", 10, at=END - timedelta(seconds=61))).auction.ends_at == END


def test_soft_close_never_moves_past_the_hard_end_nor_earlier() -> None:
    a = replace(soft(extension=30), ends_at=END + timedelta(seconds=25))
    step = place(a, bid("A", 10, at=END + timedelta(seconds=20)))
    assert step.auction.ends_at == END + timedelta(seconds=30)
    b = replace(soft(window=60), ends_at=END + timedelta(seconds=90))
    assert place(b, bid("A", 10, at=END + timedelta(seconds=29))).auction.ends_at == END + timedelta(
        seconds=90
    )


def test_what_never_moves_the_end() -> None:
    a = place(soft(), bid("A", 10, 50, at=END - timedelta(minutes=5))).auction
    late = END - timedelta(seconds=5)
    # A rejected bid, and the leader's raise without a price change.
    assert place(a, bid("B", 5, at=late)).auction.ends_at == END
    assert place(a, bid("A", 10, 90, at=late)).auction.ends_at == END
    # A bid that raises the price does.
    assert place(a, bid("B", "10.50", 20, at=late)).auction.ends_at == END + timedelta(seconds=55)
    # A hard close (W = 0) never moves.
    assert place(auction("10.00"), bid("A", 10, at=late)).auction.ends_at == END


# --- the end and the state machine -----------------------------------------------------------------


def test_close_sells_to_the_leader_when_the_reserve_is_met() -> None:
    a = place(auction("10.00", reserve_price=d(20)), bid("A", 10, 25)).auction
    step = close(a, END + GRACE, GRACE)
    assert step is not None
    assert (step.auction.status, step.auction.end_reason) == (Status.SOLD, EndReason.ENDED)
    assert step.others == {a.leader.bid_id: "won"}


def test_close_ends_unsold_without_bids_or_below_the_reserve() -> None:
    empty = close(auction(), END + GRACE, GRACE)
    assert empty is not None and (empty.auction.status, empty.auction.end_reason) == (Status.ENDED, "no_bids")
    low = place(auction("10.00", reserve_price=d(20)), bid("A", 10, 19)).auction
    step = close(low, END + GRACE, GRACE)
    assert step is not None and step.auction.end_reason == EndReason.RESERVE_NOT_MET and not step.others


def test_a_close_before_the_grace_or_of_an_offer_without_end_changes_nothing() -> None:
    assert close(auction(), END + GRACE - timedelta(microseconds=1), GRACE) is None
    assert close(auction(ends_at=None), END + timedelta(days=9), GRACE) is None


def test_an_ended_or_sold_offer_never_changes_again() -> None:
    a = place(auction(), bid("A", 10)).auction
    sold = close(a, END + GRACE, GRACE)
    assert sold is not None
    ended = sold.auction
    assert close(ended, END + timedelta(days=1), GRACE) is None
    step = place(ended, bid("B", 100, at=T0 + timedelta(minutes=2)))
    assert step.reason == Rejection.OFFER_CLOSED and step.auction.leader == ended.leader
    assert step.auction.price == ended.price and step.auction.status is Status.SOLD


def test_version_grows_by_one_per_committed_change() -> None:
    a = auction()
    moved = apply(a, [bid("A", 10), bid("B", 11), bid("C", 1)], END, GRACE)
    assert moved.moved and moved.auction.version == 2
    rejected = apply(moved.auction, [bid("D", 1)], END, GRACE)
    assert not rejected.moved and rejected.auction.version == 2
    ended = apply(moved.auction, [CloseOffer(offer_id=a.id), CloseOffer(offer_id=a.id)], END + GRACE, GRACE)
    assert ended.ended and ended.auction.version == 3
    assert ended.statuses == {moved.auction.leader.bid_id: "won"}


# --- property: for any sequence of bids ------------------------------------------------------------

bids = st.lists(
    st.tuples(
        st.sampled_from("ABCDE"),
        st.integers(min_value=1, max_value=4000),  # bid in cents
        st.integers(min_value=0, max_value=4000),  # max above the bid, in cents
    ),
    min_size=1,
    max_size=40,
)


@settings(deadline=None, max_examples=300)  # no deadline: a loaded machine must not make it flaky
@given(bids, st.sampled_from([None, d(5), d(20)]), st.sampled_from([None, d("0.10"), d(3)]))
def test_price_never_falls_nor_passes_the_leaders_max_and_the_leader_has_the_highest_max(
    plan, reserve, fixed
) -> None:
    a = auction("1.00", reserve_price=reserve, min_increment=fixed)
    latest: dict[str, tuple[Decimal, int]] = {}  # each bidder's accepted maximum and when it came
    for n, (who, cents, extra) in enumerate(plan):
        before = a
        step = place(a, bid(who, Decimal(cents) / 100, Decimal(cents + extra) / 100))
        a = step.auction
        if step.status != "rejected":
            latest[who] = (Decimal(cents + extra) / 100, n)
        assert a.price >= before.price
        if a.leader is not None:
            assert a.price <= a.leader.max_price
            top = max(m for m, _ in latest.values())
            first_at_top = min((n, w) for w, (m, n) in latest.items() if m == top)[1]
            assert a.leader.max_price == top and a.leader.username == first_at_top


@settings(max_examples=50, deadline=None)
@given(bids)
def test_the_fast_copy_of_an_auction_is_what_dataclasses_replace_makes(plan) -> None:
    """`place` copies the auction with `_evolve` (a cheaper `replace`): after every bid the result must
    be the one `replace` makes from the same fields, and the copy must share nothing it may not."""
    a = auction("1.00", reserve_price=d(5))
    for who, cents, extra in plan:
        before = a
        kept = replace(before, standing=dict(before.standing))
        a = place(a, bid(who, Decimal(cents) / 100, Decimal(cents + extra) / 100)).auction
        fields = {f: getattr(a, f) for f in a.__dataclass_fields__}
        assert a == replace(before, **fields) == Auction(**fields)
        assert type(a) is Auction and a is not before
        assert before == kept  # the auction it was copied from did not move
    assert not hasattr(Auction, "__post_init__")  # _evolve skips it: one added must change _evolve
    with pytest.raises(TypeError, match="no field"):
        _evolve(a, prize=a.price)
