"""Metrics of a real stack: after a known sequence each counter moved by exactly what happened (bids,
rejections, dead letters, slow watchers; auction ends summed over two workers), and no /metrics
answers on a public port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from auction_shared.broker import Topology
from auction_shared.config import Settings
from bid_worker.settings import WorkerSettings
from tests.live.test_live_updates import EventPublisher, big_offer_created
from tests.ops.conftest import Samples, judged_bid, moved, scrape
from tests.support.api import Api
from tests.support.environment import PG_BASE, env_of, prepare, tear_down
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


@pytest.fixture
async def own_database(own_settings: Settings) -> AsyncIterator[Settings]:
    """A database of this test's own too: the workers' closers end every due offer of their database,
    and the run's shared one holds offers other tests left live past their end."""
    own = replace(own_settings, database_url=f"{PG_BASE}/auction_test_ends_{uuid.uuid4().hex[:10]}")
    await prepare(own)
    yield own
    await tear_down(own)


@pytest.fixture
def two_workers(own_database: Settings, tmp_path: Path) -> Iterator[Stack]:
    # The shipped grace, named here: the lateness the test expects follows from it.
    stack = Stack(env_of(own_database, END_GRACE_SECONDS="2"), tmp_path)
    stack.metrics = {}
    try:
        stack.start_services()
        stack.start_worker("ends-w1")
        stack.start_worker("ends-w2")
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


def over_workers(scrapes: dict[str, Samples], name: str, **labels: str) -> float:
    """A sample summed over every bid-worker process and over its other labels, as a dashboard sums."""
    wanted = set(labels.items())
    return sum(
        value
        for process, samples in scrapes.items()
        if process.startswith("ends-w")
        for (sample, sample_labels), value in samples.items()
        if sample == name and wanted <= set(sample_labels)
    )


async def test_auction_end_metrics_count_each_offer_that_ended_by_its_time_once(
    two_workers: Stack, own_database: Settings
) -> None:
    stack = two_workers
    grace = WorkerSettings.from_env(stack.env).end_grace_seconds
    async with aiohttp.ClientSession() as http:
        api = Api(http, stack.gateway_url)
        seller, bidder = await api.accounts(2)
        before = every(stack)

        # Four offers end by their time: two sold (one meets its reserve, one has none), one whose
        # leader stays below the reserve, one nobody bid on. Two do not: one the seller accepts
        # before its end, one whose end is far off.
        ending = {
            "sold at its reserve": await api.create_offer(seller, bid_price=10, reserve_price=20, lifetime=8),
            "sold without a reserve": await api.create_offer(seller, bid_price=10, lifetime=8),
            "reserve not met": await api.create_offer(seller, bid_price=10, reserve_price=50, lifetime=8),
            "no bids": await api.create_offer(seller, bid_price=10, lifetime=8),
        }
        accepted = await api.create_offer(seller, bid_price=10, lifetime=600)
        still_open = await api.create_offer(seller, bid_price=10, lifetime=600)
        for name, price in (
            ("sold at its reserve", 25),
            ("sold without a reserve", 15),
            ("reserve not met", 20),
        ):
            assert (await judged_bid(api, bidder, ending[name]["id"], price))["status"] == "leading"
        leader = await judged_bid(api, bidder, accepted["id"], 12)
        assert (await api.put(seller, f"/v1/bid/{leader['id']}"))[0] == 200

        async def ended() -> dict[str, dict] | None:
            seen = {name: (await api.get(seller, f"/v1/offer/{o['id']}"))[1] for name, o in ending.items()}
            return seen if all(o["status"] != "live" for o in seen.values()) else None

        final = await wait_until(ended, 60, "the four offers ended by the closers")
        # The counter moves right after the closing transaction commits, which the API shows first.
        await wait_until(
            lambda: (
                over_workers(every(stack), "auction_ends_fired_total")
                - over_workers(before, "auction_ends_fired_total")
                >= len(ending)
            ),
            30,
            "the ends counted",
        )
        after = every(stack)
        others = {
            name: (await api.get(seller, f"/v1/offer/{o['id']}"))[1]
            for name, o in (("accepted", accepted), ("open", still_open))
        }

    outcome = {name: (o["status"], o["end_reason"]) for name, o in final.items()}
    assert outcome == {
        "sold at its reserve": ("sold", "ended"),
        "sold without a reserve": ("sold", "ended"),
        "reserve not met": ("ended", "reserve_not_met"),
        "no bids": ("ended", "no_bids"),
    }
    assert (others["accepted"]["status"], others["accepted"]["end_reason"]) == ("sold", "accepted")
    assert others["open"]["status"] == "live"

    def delta(name: str, **labels: str) -> float:
        return over_workers(after, name, **labels) - over_workers(before, name, **labels)

    assert delta("auction_ends_fired_total") == 4
    assert delta("auction_end_lateness_seconds_count") == 4
    assert delta("auction_end_lateness_seconds_bucket", le="+Inf") == 4
    # A close is applied only once the database clock is past ends_at + the grace (2 s): never earlier.
    assert delta("auction_end_lateness_seconds_sum") >= 4 * grace
    assert delta("auction_end_lateness_seconds_bucket", le="1.0") == 0
