"""Metrics of a real stack: after a known sequence each counter moved by exactly what happened, and no
/metrics answers on a public port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from auction_shared.broker import Topology
from auction_shared.config import Settings
from tests.live.test_live_updates import EventPublisher, big_offer_created
from tests.ops.conftest import Samples, judged_bid, moved, scrape
from tests.support.api import Api
from tests.support.environment import env_of
from tests.support.processes import Stack
from tests.support.waiting import wait_until
from tests.support.watch import Watch

pytestmark = pytest.mark.slow


@pytest.fixture
def observed(own_settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(env_of(own_settings, WS_CLIENT_QUEUE="16", WS_HEARTBEAT_SECONDS="300"), tmp_path)
    stack.metrics = {}
    try:
        stack.start_services()
        stack.start_worker("metrics-w1")
        yield stack
    finally:
        stack.stop()


def every(stack: Stack) -> dict[str, Samples]:
    assert stack.metrics is not None
    return {name: scrape(port) for name, port in stack.metrics.items()}


async def publish_poison(settings: Settings, offer_id: str) -> None:
    """A `bid.placed` anyone could publish, that is no bid: the worker must dead-letter it."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology.from_settings(settings).events_exchange)
        message = aio_pika.Message(b"{not json", headers={"offer_id": offer_id}, message_id="poison")
        await exchange.publish(message, routing_key="bid.placed")
    finally:
        await connection.close()


async def test_each_counter_moves_by_exactly_what_happened(observed: Stack, own_settings: Settings) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(http, observed.gateway_url)
        seller, bidder = await api.accounts(2)
        offer = await api.create_offer(seller, bid_price=10)
        await wait_until(lambda: every(observed)["offers"], 10, "a scrape")
        before = every(observed)

        # Refused at intake: a malformed body, an unknown offer, the seller's own offer.
        assert (await api.call("POST", "/v1/bid", json={"offer_id": 3}, headers=bidder.headers))[0] == 400
        assert (await api.bid(bidder, str(uuid.uuid4()), 20))[0] == 404
        assert (await api.bid(seller, offer["id"], 20))[0] == 403
        # Queued: two that lead in turn, one too low; then a poison message.
        statuses = [await judged_bid(api, bidder, offer["id"], price) for price in (11, 12, 11.5)]
        await publish_poison(own_settings, offer["id"])
        await wait_until(
            lambda: moved(
                before["metrics-w1"],
                every(observed)["metrics-w1"],
                "auction_dead_letters_total",
                reason="malformed",
            ),
            30,
            "the poison message dead-lettered",
        )

        # A watcher that never reads, while events it cannot keep up with arrive.
        gateway_process = next(p for p in observed.processes if p.name == "gateway")
        slow = await Watch.open(http, observed.gateway_url, bidder.token)
        async with EventPublisher(own_settings) as publisher:
            for i in range(3000):
                await publisher.publish(big_offer_created(i))
                if i % 100 == 99 and "frames behind" in gateway_process.output():
                    break
        await wait_until(
            lambda: moved(
                before["gateway"], every(observed)["gateway"], "auction_ws_slow_client_disconnects_total"
            ),
            30,
            "the slow watcher closed",
        )
        await slow.ws.close()
        after = every(observed)

    gateway, bids, worker = before["gateway"], before["bids"], before["metrics-w1"]
    assert moved(bids, after["bids"], "auction_bids_rejected_total", stage="intake", reason="invalid") == 1
    assert moved(bids, after["bids"], "auction_bids_rejected_total", stage="intake", reason="no_offer") == 1
    assert moved(bids, after["bids"], "auction_bids_rejected_total", stage="intake", reason="own_offer") == 1
    assert moved(bids, after["bids"], "auction_bids_received_total") == 3
    applied = [s for s in statuses if s["status"] != "rejected"]
    rejected = [s["reason"] for s in statuses if s["status"] == "rejected"]
    assert len(applied) == 2 and len(rejected) == 1
    assert moved(worker, after["metrics-w1"], "auction_bids_applied_total") == 2
    assert (
        moved(worker, after["metrics-w1"], "auction_bids_rejected_total", stage="worker", reason=rejected[0])
        == 1
    )
    assert moved(worker, after["metrics-w1"], "auction_dead_letters_total", reason="malformed") == 1
    assert sum(v for (n, _), v in after["metrics-w1"].items() if n == "auction_shard_batch_size_sum") >= 3
    route = {"method": "POST", "route": "/v1/bid"}
    assert (
        moved(
            gateway, after["gateway"], "auction_http_requests_total", service="gateway", status="202", **route
        )
        == 3
    )
    assert (
        moved(
            gateway, after["gateway"], "auction_http_requests_total", service="gateway", status="400", **route
        )
        == 1
    )
    assert (
        moved(bids, after["bids"], "auction_http_requests_total", service="bids", status="202", **route) == 3
    )
    assert moved(gateway, after["gateway"], "auction_ws_slow_client_disconnects_total") == 1


async def test_metrics_are_not_served_on_any_public_port(observed: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        for name, port in observed.ports.items():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 404, f"{name} serves /metrics on its API port"
        assert observed.metrics is not None
        for name, port in observed.metrics.items():
            assert port not in observed.ports.values()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200 and "auction_http_requests" in await resp.text(), name
