"""RabbitMQ cut under real service processes: offers keep coming, no event and no 202 bid is lost."""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from decimal import Decimal

from auction_shared.config import Settings
from auction_shared.events import BidPlaced
from tests.reliability.client import Account, Client, fetch, health_says, wait_until
from tests.reliability.tap import EventTap
from tests.support.faultproxy import FaultProxy
from tests.support.model import ModelBid, run_model
from tests.support.processes import Stack


async def test_offers_are_created_through_a_broker_cut_and_every_offer_created_arrives_once(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Client
) -> None:
    seller = await client.account("seller")
    bidder = await client.account("bidder")
    offers_port, bids_port = faulty_stack.ports["offers"], faulty_stack.ports["bids"]
    created: list[str] = []

    async def create(n: int) -> None:
        for _ in range(n):
            status, body = await client.create_offer(seller)
            assert status == 201, body
            created.append(body["id"])

    async with EventTap(settings, "offer.created") as tap:
        await create(3)
        broker_proxy.cut()
        await wait_until(lambda: health_says(client, offers_port, 503, rabbitmq="down", postgres="up"),
                         20, "offers /health to say rabbitmq is down")
        await create(10)  # the outbox holds their events; the answer does not wait for the broker
        # Bid intake cannot take a bid it cannot queue durably: a 503 problem, at once, not a 500 or a hang.
        status, body = await client.bid(bidder, created[-1], 99)
        assert status == 503, body
        assert body["status"] == 503 and "retry" in body["detail"]
        assert await health_says(client, bids_port, 503, rabbitmq="down", postgres="up")
        assert await health_says(client, faulty_stack.ports["gateway"], 503, offers="down", bids="down", auth="up")

        broker_proxy.restore()
        await wait_until(lambda: health_says(client, offers_port, 200), 20, "offers to reconnect")
        await create(3)
        await wait_until(lambda: set(created) <= set(tap.event_ids_by_subject()), 30,
                         "every offer.created to arrive after the restore")
        status, body = await client.bid(bidder, created[-1], 99)
        assert status == 202, body

    copies = tap.event_ids_by_subject()
    # Each offer has exactly one event id: a copy sent twice (at least once) is the same event.
    assert all(len(copies[offer_id]) == 1 for offer_id in created), {o: copies[o] for o in created}
    delivered = [e.data["id"] for e in tap.first_copies() if e.data["id"] in set(created)]
    assert delivered == created  # once each after dedupe, in the order the offers were created


async def _bid_stream(
    client: Client, bidders: list[Account], offer_ids: list[str], accepted: list[str], refused: list[int],
    stop: asyncio.Event,
) -> None:
    """Bidders bid on random offers until `stop`; 202 bid ids and refusals are recorded."""

    async def one(who: Account, rng: random.Random) -> None:
        while not stop.is_set():
            price = Decimal(rng.randint(100, 100_000)) / 100
            status, body = await client.bid(who, rng.choice(offer_ids), float(price))
            if status == 202:
                accepted.append(body["id"])
            else:
                assert status == 503, (status, body)  # never a 500, never a hang
                refused.append(status)
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(who, random.Random(i)) for i, who in enumerate(bidders)))


async def _until(condition, what: str, timeout: float = 30.0) -> None:
    await wait_until(condition, timeout, what, interval=0.02)


def model_of(tap: EventTap) -> dict[str, list[ModelBid]]:
    """Each offer's bids in the order its shard queue held them (the tap shares the publisher's order)."""
    order: dict[str, list[ModelBid]] = defaultdict(list)
    for event in tap.first_copies():
        bid = BidPlaced.from_event(event)
        order[str(bid.offer_id)].append(ModelBid(str(bid.bid_id), bid.bid_price, bid.username))
    return order


async def assert_final_state_matches_model(
    settings: Settings, offers: dict[str, Decimal], tap: EventTap, accepted: list[str]
) -> None:
    """Every 202 bid applied once, nothing else applied, each offer as the sequential model says."""
    order = model_of(tap)
    queued = {b.id for bids in order.values() for b in bids}
    assert set(accepted) <= queued, "a bid answered 202 never reached the broker"
    rows = await fetch(
        settings.database_url,
        "SELECT id, offer_id, status, reason FROM bids WHERE offer_id = ANY($1::uuid[])",
        [uuid.UUID(o) for o in offers],
    )
    applied = {str(r["id"]): r for r in rows}
    assert set(applied) == queued, "bids lost or invented between the queue and the database"
    states = {
        str(r["id"]): r
        for r in await fetch(
            settings.database_url,
            "SELECT id, bid_price, highest_bid_id, bid_count FROM offers WHERE id = ANY($1::uuid[])",
            [uuid.UUID(o) for o in offers],
        )
    }
    for offer_id, start in offers.items():
        model = run_model(start, order[offer_id])
        state = states[offer_id]
        assert state["bid_count"] == model.count == len(order[offer_id])  # none doubled
        assert state["bid_price"] == model.price
        assert (str(state["highest_bid_id"]) if state["highest_bid_id"] else None) == model.leader
        for bid in order[offer_id]:
            row = applied[bid.id]
            assert (row["status"], row["reason"]) == (model.status[bid.id], model.reason[bid.id]), bid


async def test_no_202_bid_is_lost_through_a_broker_cut_and_each_is_applied_once(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Client
) -> None:
    # The worker reaches the broker through the proxy too: it must reconnect and consume again.
    faulty_stack.start_worker("rel-intake-worker")
    seller = await client.account("seller")
    bidders = [await client.account("bidder") for _ in range(3)]
    offers: dict[str, Decimal] = {}
    for _ in range(3):
        status, body = await client.create_offer(seller, price=5)
        assert status == 201, body
        offers[body["id"]] = Decimal("5.00")
    accepted: list[str] = []
    refused: list[int] = []
    stop = asyncio.Event()
    async with EventTap(settings, "bid.placed") as tap:
        stream = asyncio.create_task(_bid_stream(client, bidders, list(offers), accepted, refused, stop))
        try:
            await _until(lambda: len(accepted) >= 60 or stream.done(), "60 bids before the cut")
            broker_proxy.cut()
            await _until(lambda: len(refused) >= 10 or stream.done(), "bid intake to refuse during the cut")
            taken_during_cut = len(accepted)
            broker_proxy.restore()
            await _until(lambda: len(accepted) >= taken_during_cut + 60 or stream.done(),
                         "60 bids after the restore")
        finally:
            stop.set()
            await stream  # re-raises an unexpected status
        await wait_until(
            lambda: tap_has(tap, accepted), 30, "every 202 bid to reach the tap"
        )
        await wait_until(lambda: applied_count(settings, accepted), 60, "every 202 bid to be applied")
    await assert_final_state_matches_model(settings, offers, tap, accepted)


def tap_has(tap: EventTap, bid_ids: list[str]) -> bool:
    return set(bid_ids) <= {e.id for e in tap.events}


async def applied_count(settings: Settings, bid_ids: list[str]) -> bool:
    rows = await fetch(
        settings.database_url, "SELECT count(*) AS n FROM bids WHERE id = ANY($1::uuid[])",
        [uuid.UUID(b) for b in bid_ids],
    )
    return rows[0]["n"] == len(bid_ids)
