"""RabbitMQ cut under real service processes: offers keep coming, no event and no 202 bid is lost."""

from __future__ import annotations

import asyncio
from functools import partial

import aiohttp

from auction_shared.config import Settings
from tests.reliability.bidding import BidStream, assert_matches_model, bidders_and_offers, wait_applied
from tests.reliability.probes import health_says
from tests.reliability.tap import EventTap
from tests.support.api import Api
from tests.support.faultproxy import FaultProxy
from tests.support.processes import Stack
from tests.support.waiting import wait_until


class OfferCreatedWatcher:
    """A WebSocket client of the gateway that keeps the id of every `offerCreated` frame it gets."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.offer_ids: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, client: Api, token: str) -> OfferCreatedWatcher:
        ws = await client.session.ws_connect(client.base + "/v1/stream")
        await ws.send_json({"event": "authenticate", "token": token})
        reply = await ws.receive_json(timeout=20)
        assert reply["event"] == "authenticated", reply
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frame = message.json()
                if frame.get("event") == "offerCreated":
                    self.offer_ids.append(frame["data"]["id"])

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def test_offers_are_created_through_a_broker_cut_and_every_offer_created_arrives_once(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Api
) -> None:
    seller = await client.account("seller")
    bidder = await client.account("bidder")
    offers_port, bids_port = faulty_stack.ports["offers"], faulty_stack.ports["bids"]
    created: list[str] = []

    async def create(n: int) -> None:
        for _ in range(n):
            created.append((await client.create_offer(seller))["id"])

    watcher = await OfferCreatedWatcher.open(client, bidder.token)
    try:
        async with EventTap(settings, "offer.created") as tap:
            await create(3)
            broker_proxy.cut()
            await wait_until(
                lambda: health_says(client, offers_port, 503, rabbitmq="down", postgres="up"),
                20,
                "offers /health to say rabbitmq is down",
            )
            await create(10)  # the outbox holds their events; the answer does not wait for the broker
            # Bid intake cannot queue a bid durably: a 503 problem at once, not a 500 or a hang.
            status, body = await client.bid(bidder, created[-1], 99)
            assert status == 503, body
            assert body["status"] == 503 and "retry" in body["detail"]
            assert await health_says(client, bids_port, 503, rabbitmq="down", postgres="up")
            assert await health_says(
                client, faulty_stack.ports["gateway"], 503, offers="down", bids="down", auth="up"
            )

            broker_proxy.restore()
            for port in (offers_port, bids_port):
                await wait_until(partial(health_says, client, port, 200), 20, "offers and bids to reconnect")
            await create(3)
            await wait_until(
                lambda: set(created) <= set(tap.event_ids_by_subject()),
                30,
                "every offer.created to reach the broker after the restore",
            )
            status, body = await client.bid(bidder, created[-1], 99)
            assert status == 202, body
        await wait_until(
            lambda: set(created) <= set(watcher.offer_ids),
            30,
            "every offerCreated to reach the WebSocket client",
        )
    finally:
        await watcher.close()

    copies = tap.event_ids_by_subject()
    # Each offer has exactly one event id: a copy sent twice (at least once) is the same event.
    assert all(len(copies[offer_id]) == 1 for offer_id in created), {o: copies[o] for o in created}
    delivered = [e.to_data()["id"] for e in tap.first_copies() if e.to_data()["id"] in set(created)]
    assert delivered == created  # once each after dedupe, in the order the offers were created
    # The gateway drops copies by event id: its client saw each offer once, in order.
    assert [o for o in watcher.offer_ids if o in set(created)] == created


async def test_no_202_bid_is_lost_through_a_broker_cut_and_each_is_applied_once(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Api
) -> None:
    # The worker reaches the broker through the proxy too: it must reconnect and consume again.
    faulty_stack.start_worker("rel-intake-worker")
    bidders, offers = await bidders_and_offers(client, bidders=3, offers=3)
    async with EventTap(settings, "bid.placed") as tap:
        async with BidStream(client, bidders, list(offers)) as stream:
            await stream.until(lambda s: len(s.accepted) >= 60, "60 bids before the cut")
            broker_proxy.cut()
            await stream.until(lambda s: s.refused >= 10, "bid intake to refuse during the cut")
            taken = len(stream.accepted)
            broker_proxy.restore()
            await stream.until(lambda s: len(s.accepted) >= taken + 60, "60 bids after the restore")
        await wait_applied(settings, offers, tap, stream.accepted)
    await assert_matches_model(settings, offers, tap, stream.accepted)
