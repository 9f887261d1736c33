"""Live updates end to end: real service processes, two gateway replicas, a bid-worker, RabbitMQ.

Absence is proved without timing: frames reach a socket in the order its gateway handled the events,
so once a later marker event has arrived, an earlier event that was meant for the socket has too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from auction_shared.config import Settings
from auction_shared.events import OfferCreated
from tests.support.api import Api
from tests.support.processes import ServiceProcess, Stack
from tests.support.publish import EventPublisher
from tests.support.watch import DEADLINE, Watch

CLOSE_TOO_SLOW = 1008


@dataclass
class Live:
    stack: Stack
    gateway_b: str

    @property
    def gateway_a(self) -> str:
        return self.stack.gateway_url


@pytest.fixture(scope="module")
def live(live_stack: Stack) -> Iterator[Live]:
    """The shared stack (auth, offers, bids, gateway A, a bid-worker) plus gateway B for this module."""
    gateway_b, port_b = live_stack.start_gateway("gateway-b")
    try:
        yield Live(live_stack, f"http://127.0.0.1:{port_b}")
    finally:
        gateway_b.terminate()


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def created(offer_id: str):
    return lambda f: f["event"] == "offerCreated" and f["data"]["id"] == offer_id


def offer_events(watch: Watch, offer_id: str) -> list[str]:
    """The offerUpdated / offerSold frames a watch got about one offer."""
    out = []
    for f in watch.frames:
        if f["event"] == "offerUpdated" and f["data"]["id"] == offer_id:
            out.append("offerUpdated")
        elif f["event"] == "offerSold" and f["data"]["offer"]["id"] == offer_id:
            out.append("offerSold")
    return out


async def test_every_authenticated_watcher_on_either_replica_gets_each_new_offer_exactly_once(live, http):
    a, b = Api(http, live.gateway_a), Api(http, live.gateway_b)
    seller = await a.account("seller")
    watchers = []
    for api in (a, b):
        for _ in range(3):
            watchers.append(await Watch.open(http, api.base, (await api.account("watcher")).token))
    anonymous = [await Watch.open(http, a.base), await Watch.open(http, b.base)]

    offers = [await a.create_offer(seller) for _ in range(5)]
    marker = await b.create_offer(seller)
    await asyncio.gather(*(w.until(created(marker["id"])) for w in watchers))

    ours = {o["id"] for o in offers} | {marker["id"]}
    for w in watchers:
        counts = Counter(f["data"]["id"] for f in w.of("offerCreated") if f["data"]["id"] in ours)
        assert counts == {offer_id: 1 for offer_id in ours}, counts
        by_id = {f["data"]["id"]: f["data"] for f in w.of("offerCreated")}
        assert all(by_id[o["id"]] == o for o in offers)  # the offer exactly as POST returned it
    for w in anonymous:
        # Had an offerCreated been queued to it, it would arrive before the answer to authenticate.
        reply = await w.authenticate(seller.token)
        assert w.frames == [reply] and reply["event"] == "authenticated"


async def test_subscribers_and_only_they_follow_an_offers_price_and_its_sale(live, http):
    a, b = Api(http, live.gateway_a), Api(http, live.gateway_b)
    seller = await a.account("seller")
    bidder = await b.account("bidder")
    x = await a.create_offer(seller, bid_price=10)
    y = await a.create_offer(seller, bid_price=10)

    async def watcher(api: Api, *follow: str) -> Watch:
        w = await Watch.open(http, api.base, (await api.account("watcher")).token)
        for offer_id in follow:
            assert (await w.request("subscribe", "subscribed", offer_id=offer_id))["event"] == "subscribed"
        return w

    x_on_a, x_on_b, y_on_a, nothing_on_b = (
        await watcher(a, x["id"]),
        await watcher(b, x["id"]),
        await watcher(a, y["id"]),
        await watcher(b),
    )
    left_x = await watcher(a, x["id"])
    assert (await left_x.request("unsubscribe", "unsubscribed", offer_id=x["id"]))["event"] == "unsubscribed"

    status, bid = await b.bid(bidder, x["id"], 25.5)
    assert status == 202, bid
    for w in (x_on_a, x_on_b):
        update = await w.until(lambda f: f["event"] == "offerUpdated" and f["data"]["id"] == x["id"])
        assert update["data"]["bid_price"] == 25.5
        assert update["data"]["highest_bid_id"] == bid["id"]
        assert update["data"]["highest_bidder"] == bidder.username
    status, body = await b.bid(bidder, y["id"], 30)
    assert status == 202, body
    update = await y_on_a.until(lambda f: f["event"] == "offerUpdated" and f["data"]["id"] == y["id"])
    assert update["data"]["bid_price"] == 30

    # The update arrived, so the bid is processed and leads: the owner can accept it.
    status, body = await a.put(seller, f"/v1/bid/{bid['id']}")
    assert status == 200, body
    for w in (x_on_a, x_on_b):
        sold = await w.until(lambda f: f["event"] == "offerSold" and f["data"]["offer"]["id"] == x["id"])
        assert sold["data"]["offer"]["sold"] is True
        assert sold["data"]["bid"]["id"] == bid["id"] and sold["data"]["bid"]["accepted"] is True

    marker = await b.create_offer(seller)
    everyone = (x_on_a, x_on_b, y_on_a, nothing_on_b, left_x)
    await asyncio.gather(*(w.until(created(marker["id"])) for w in everyone))
    assert offer_events(x_on_a, x["id"]) == offer_events(x_on_b, x["id"]) == ["offerUpdated", "offerSold"]
    assert offer_events(x_on_a, y["id"]) == offer_events(x_on_b, y["id"]) == []
    assert offer_events(y_on_a, y["id"]) == ["offerUpdated"] and offer_events(y_on_a, x["id"]) == []
    for w in (nothing_on_b, left_x):
        assert offer_events(w, x["id"]) == offer_events(w, y["id"]) == []


def big_offer_created(i: int) -> OfferCreated:
    # Offer-shaped, with a large title: the silent socket's buffers fill in a few hundred events.
    return OfferCreated({"id": str(uuid.uuid4()), "title": f"{i} " + "x" * 16_000})


@pytest.mark.parametrize(
    ("limits", "said"),
    [
        ({"WS_CLIENT_QUEUE": "16"}, "frames behind"),
        # Frames enough for any burst, but 256 KiB of them: the bytes bound closes it first.
        ({"WS_CLIENT_QUEUE": "100000", "WS_CLIENT_QUEUE_BYTES": str(256 * 1024)}, "bytes behind"),
    ],
    ids=["frames", "bytes"],
)
async def test_a_watcher_that_never_reads_is_closed_1008_and_the_others_get_every_event(
    live, http, settings, limits: dict[str, str], said: str
):
    # A small queue makes "falling behind" quick to reach; the long heartbeat keeps the ping
    # timeout from dropping the silent socket first.
    gateway, port = live.stack.start_gateway("gateway-slow", WS_HEARTBEAT_SECONDS="300", **limits)
    try:
        await _slow_watcher_is_closed_and_the_others_get_everything(
            gateway, f"http://127.0.0.1:{port}", http, settings, said
        )
    finally:
        gateway.terminate()


async def _slow_watcher_is_closed_and_the_others_get_everything(
    gateway: ServiceProcess, base: str, http: aiohttp.ClientSession, settings: Settings, said: str
) -> None:
    user = await Api(http, base).account("watcher")
    slow = await Watch.open(http, base, user.token)
    readers = [await Watch.open(http, base, user.token) for _ in range(4)]
    end = OfferCreated({"id": str(uuid.uuid4()), "title": "the end"})
    reading = [asyncio.create_task(w.until(created(end.offer_id), deadline=120)) for w in readers]

    sent: list[str] = []
    async with EventPublisher(settings) as publisher:
        # How much a socket buffers depends on the kernel's settings: send until the gateway
        # says it closed a watcher as too slow (at most 48 MB), however long that takes.
        for batch in range(30):
            for i in range(100):
                event = big_offer_created(batch * 100 + i)
                await publisher.publish(event)
                sent.append(event.offer_id)
            if said in gateway.output():
                break
        await publisher.publish(end)
    await asyncio.gather(*reading)

    assert said in gateway.output()
    wanted = [*sent, end.offer_id]
    for w in readers:
        assert [f["data"]["id"] for f in w.of("offerCreated") if f["data"]["id"] in set(wanted)] == wanted
    # Now the silent socket reads: what was buffered before it fell behind, then the close.
    assert await slow.close_code(deadline=DEADLINE) == CLOSE_TOO_SLOW
    got = [f["data"]["id"] for f in slow.of("offerCreated")]
    assert got == wanted[: len(got)] and len(got) < len(wanted)
