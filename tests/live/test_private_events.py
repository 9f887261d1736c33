"""Private events and event order across two gateway processes (docs/API.md, "Auction rules → Events").

The events are published here, straight to the run's events exchange, as any publisher could: late,
duplicated, copied, misrouted. So these tests prove what the gateways do with whatever order the
broker hands them, independently of how the bid-worker publishes. Absence is proved without timing:
a socket gets frames in the order its gateway handled the events, so once a later marker has arrived,
anything meant for the socket before it has too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidUpdated, OfferCreated, OfferEnded, OfferSold, OfferUpdated, private_key
from tests.support.api import Api
from tests.support.management import bindings_from, management_session
from tests.support.processes import Stack
from tests.support.publish import EventPublisher, bid_updated, offer_view
from tests.support.waiting import wait_until
from tests.support.watch import Frame, Watch

WAIT = 30.0


@pytest.fixture(scope="module")
def gateway_b(live_stack: Stack) -> Iterator[str]:
    """A second gateway replica on the shared stack (the first is live_stack.gateway_url)."""
    proc, port = live_stack.start_gateway("gateway-private-b")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def marker_reaches(publisher: EventPublisher, watches: list[Watch]) -> None:
    """Publish a new offer and wait until every socket has it: what was sent before has arrived."""
    marker = OfferCreated(offer_view(str(uuid.uuid4()), 1))
    await publisher.publish(marker)
    await asyncio.gather(
        *(
            w.until(lambda f: f["event"] == "offerCreated" and f["data"]["id"] == marker.offer_id, WAIT)
            for w in watches
        )
    )


def about(frame: Frame) -> dict[str, Any] | None:
    """The offer a frame is about, or None for frames about no offer."""
    data: Any = frame.get("data")
    if frame["event"] in ("offerSold", "bidUpdated"):
        return dict(data["offer"])
    if frame["event"] in ("offerUpdated", "offerEnded", "offerCreated"):
        return dict(data)
    return None


def story(w: Watch, offer_id: str) -> list[tuple[str, int]]:
    """(event, version) of every frame a socket got about one offer after its creation, in order."""
    out = []
    for f in w.frames:
        offer = about(f)
        if offer is not None and offer["id"] == offer_id and f["event"] != "offerCreated":
            out.append((f["event"], offer["version"]))
    return out


async def user_bindings(settings: Settings, user_id: str) -> int:
    """How many gateway queues are bound to the user's private key."""
    async with management_session() as mgmt:
        rows = await bindings_from(mgmt, Topology.from_settings(settings).events_exchange)
    return sum(1 for b in rows if b["routing_key"] == private_key(user_id))


async def routes_are(settings: Settings, user_id: str, count: int) -> bool:
    return await user_bindings(settings, user_id) == count


async def test_private_events_reach_every_socket_of_their_user_on_both_replicas_and_no_one_else(
    live_stack: Stack, gateway_b: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    a, b = Api(http, live_stack.gateway_url), Api(http, gateway_b)
    bidder, other, seller = await a.account("bidder"), await a.account("other"), await a.account("seller")
    bidder_a, bidder_b = (
        await Watch.open(http, a.base, bidder.token),
        await Watch.open(http, b.base, bidder.token),
    )
    other_a, other_b = (
        await Watch.open(http, a.base, other.token),
        await Watch.open(http, b.base, other.token),
    )
    seller_b = await Watch.open(http, b.base, seller.token)
    everyone = [bidder_a, bidder_b, other_a, other_b, seller_b]
    # `authenticated` came after the binding: each replica holds one route per user with a socket.
    assert await user_bindings(settings, bidder.user_id) == 2
    assert await user_bindings(settings, seller.user_id) == 1

    offer_id = str(uuid.uuid4())
    # One message, two changes of the bidder's bids (the worker sends one per bidder and batch).
    at_v3 = offer_view(offer_id, 3, bid_price=31)
    outbid = BidUpdated(
        uuid.UUID(bidder.user_id),
        (
            bid_updated(bidder.user_id, at_v3, status="outbid", max_price=30).changes[0],
            bid_updated(bidder.user_id, at_v3, status="rejected", max_price=None).changes[0],
        ),
    )
    ended = OfferEnded(
        offer_view(offer_id, 4, status="ended", end_reason="reserve_not_met"),
        recipient=uuid.UUID(seller.user_id),
    )
    async with EventPublisher(settings) as publisher:
        await publisher.publish(outbid)
        await publisher.publish(ended)
        # The bidder's event under the other user's key: the gateways that hold the other user's
        # sockets receive it, and must hand it to nobody.
        await publisher.publish(
            bid_updated(bidder.user_id, offer_view(offer_id, 4), status="superseded"),
            private_key(other.user_id),
        )
        await marker_reaches(publisher, everyone)

    for w in (bidder_a, bidder_b):
        got = w.of("bidUpdated")  # a frame per change, in the message's order
        assert [f["data"] for f in got] == [
            {"bid": dict(c.bid), "offer": dict(c.offer)} for c in outbid.changes
        ]
        assert got[0]["data"]["bid"]["max_price"] == 30  # the bidder's own maximum, to the bidder only
        assert w.of("offerEnded") == []
    [seller_end] = seller_b.of("offerEnded")  # the seller's own offer, with no subscription
    assert seller_end["data"]["end_reason"] == "reserve_not_met"
    assert seller_b.of("bidUpdated") == []
    for w in (other_a, other_b):
        assert w.of("bidUpdated") == w.of("offerEnded") == []

    # The last socket of a user on a replica takes the route with it; the other replica keeps its own.
    await bidder_b.close()
    await wait_until(lambda: routes_are(settings, bidder.user_id, 1), WAIT, "B to drop the bidder's route")
    async with EventPublisher(settings) as publisher:
        again = bid_updated(bidder.user_id, offer_view(offer_id, 5), status="leading")
        await publisher.publish(again)
        await bidder_a.until(
            lambda f: f["event"] == "bidUpdated" and f["data"]["offer"]["version"] == 5, WAIT
        )
    await bidder_a.close()
    await wait_until(lambda: routes_are(settings, bidder.user_id, 0), WAIT, "A to drop the bidder's route")


async def test_no_socket_sees_an_offer_go_back_in_version_whatever_order_the_events_arrive_in(
    live_stack: Stack, gateway_b: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    a, b = Api(http, live_stack.gateway_url), Api(http, gateway_b)
    seller, bidder, watcher = await a.account("seller"), await a.account("bidder"), await a.account("watcher")
    offer = await a.create_offer(seller)  # real, so that subscribing to it succeeds
    oid = offer["id"]
    seller_a = await Watch.open(http, a.base, seller.token)
    watcher_a, watcher_b = (
        await Watch.open(http, a.base, watcher.token),
        await Watch.open(http, b.base, watcher.token),
    )
    bidder_b = await Watch.open(http, b.base, bidder.token)  # not subscribed: only its private events
    subscribed = [seller_a, watcher_a, watcher_b]
    for w in subscribed:
        assert (await w.request("subscribe", "subscribed", offer_id=oid))["event"] == "subscribed"

    def updated(version: int) -> OfferUpdated:
        return OfferUpdated(offer_view(oid, version, bid_price=10 + version))

    sale = offer_view(oid, 6, status="sold", sold=True, end_reason="ended")
    winning = {"id": str(uuid.uuid4()), "offer_id": oid, "bid_price": 16, "status": "won", "accepted": True}
    public_sale = OfferSold(sale, bid=winning)
    v4 = updated(4)
    # What a slow or restarted publisher can produce: late versions, a redelivered copy (same id),
    # a second copy under a new id, the public sale and the seller's own copy of it.
    events = [
        updated(2),
        v4,
        updated(3),
        v4,
        OfferUpdated(dict(v4.offer)),
        bid_updated(bidder.user_id, offer_view(oid, 5), status="leading"),
        bid_updated(bidder.user_id, offer_view(oid, 5), status="superseded"),
        public_sale,
        OfferSold(sale, bid=winning, recipient=uuid.UUID(seller.user_id)),
        updated(5),
        public_sale,
        bid_updated(bidder.user_id, offer_view(oid, 4), status="outbid"),
        updated(3),
    ]
    async with EventPublisher(settings) as publisher:
        for event in events:
            await publisher.publish(event)
        await marker_reaches(publisher, [*subscribed, bidder_b])

    expected = [("offerUpdated", 2), ("offerUpdated", 4), ("offerSold", 6)]
    for w in subscribed:
        assert story(w, oid) == expected, w.frames
    assert story(bidder_b, oid) == [("bidUpdated", 5), ("bidUpdated", 5)]


def check_order(w: Watch, offer_id: str) -> list[tuple[str, int]]:
    """The socket's story of the offer, after checking it never goes back in version and ends once."""
    seen = story(w, offer_id)
    versions = [v for _, v in seen]
    assert versions == sorted(versions), seen
    ends = [i for i, (name, _) in enumerate(seen) if name in ("offerSold", "offerEnded")]
    assert len(ends) <= 1, seen
    if ends:  # after the end only the bidders' own news of that same version (their bid won)
        assert all(name == "bidUpdated" and v == seen[ends[0]][1] for name, v in seen[ends[0] + 1 :]), seen
    return seen


def own_bids(w: Watch) -> set[tuple[str, str]]:
    return {(f["data"]["bid"]["id"], f["data"]["bid"]["status"]) for f in w.of("bidUpdated")}


async def test_a_real_auction_to_its_end_keeps_every_socket_in_order_and_tells_each_bidder_only_their_own(
    live_stack: Stack, gateway_b: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    a, b = Api(http, live_stack.gateway_url), Api(http, gateway_b)
    seller, x, y, watcher = [await a.account(name) for name in ("seller", "x", "y", "watcher")]
    offer = await a.create_offer(seller, lifetime=8)
    oid = offer["id"]
    x_a, x_b = await Watch.open(http, a.base, x.token), await Watch.open(http, b.base, x.token)
    y_b = await Watch.open(http, b.base, y.token)
    followers = [await Watch.open(http, a.base, seller.token)]
    followers += [await Watch.open(http, api.base, watcher.token) for api in (a, b)]
    for w in followers:
        assert (await w.request("subscribe", "subscribed", offer_id=oid))["event"] == "subscribed"

    # Straight and proxy bids from both, all at once through both replicas, while the clock runs.
    async def bid(api: Api, who: Any, price: int, maximum: int | None) -> None:
        body: dict[str, Any] = {"offer_id": oid, "bid_price": price}
        if maximum is not None:
            body["max_price"] = maximum
        status, answer = await api.call("POST", "/v1/bid", json=body, headers=who.headers)
        assert status in (202, 409), answer  # 409: the offer ended meanwhile

    await asyncio.gather(
        *(
            bid(a if i % 2 else b, x if i % 2 else y, 10 + i, 10 + 2 * i if i % 3 == 0 else None)
            for i in range(24)
        )
    )
    for w in followers:
        await w.until(lambda _, w=w: any(n in ("offerSold", "offerEnded") for n, _ in story(w, oid)), 60)
    status, final = await a.get(seller, f"/v1/offer/{oid}")
    assert status == 200 and final["status"] == "sold", final
    winner_sockets = (x_a, x_b) if final["highest_bidder"] == x.username else (y_b,)
    for w in winner_sockets:
        await w.until(lambda f: f["event"] == "bidUpdated" and f["data"]["bid"]["status"] == "won", WAIT)

    for w in [*followers, x_a, x_b, y_b]:
        check_order(w, oid)
    for w in followers:
        sold = [f for f in w.frames if f["event"] == "offerSold" and f["data"]["offer"]["id"] == oid]
        assert len(sold) == 1 and sold[0]["data"]["offer"]["version"] == final["version"]
        assert w.of("bidUpdated") == []  # the seller and the watcher placed no bid
    # The relay published every bidder's news before the sale: a marker after it flushes them out.
    async with EventPublisher(settings) as publisher:
        await marker_reaches(publisher, [*followers, x_a, x_b, y_b])

    assert own_bids(x_a) == own_bids(x_b) and own_bids(x_a)
    for w, who in ((x_a, x), (x_b, x), (y_b, y)):
        assert {f["data"]["bid"]["username"] for f in w.of("bidUpdated")} == {who.username}
    assert not own_bids(x_a) & own_bids(y_b)
