"""PostgreSQL cut or stalled under real service processes: 503s within a bound, then recovery on its own."""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

from auction_shared.config import Settings
from tests.reliability.client import Client, fetch, health_says, wait_until
from tests.reliability.conftest import DEPENDENCY_TIMEOUT, proxy_for
from tests.support.faultproxy import FaultProxy
from tests.support.model import ModelBid, run_model
from tests.support.processes import Stack

# A request that needs the missing database must be answered by then (the gateway's own upstream
# timeout is DEPENDENCY_TIMEOUT; the rest is slack for a loaded machine), never hang.
ANSWER_BOUND = 3 * float(DEPENDENCY_TIMEOUT) + 5


async def _every_route_says_503(client: Client, seller, offer_id: str, only: tuple[str, ...] = ()) -> None:
    """Each call (or those whose path starts with one of `only`, one per service) answers 503 in time."""
    calls = [
        ("POST", "/v1/login", {"json": {"username": seller.username, "password": "whatever"}}),
        ("POST", "/v1/signup", {"json": {"username": f"u_{uuid.uuid4().hex[:8]}", "password": "secret"}}),
        ("GET", "/v1/offer", {"headers": seller.headers}),
        ("GET", f"/v1/offer/{offer_id}", {"headers": seller.headers}),
        ("POST", "/v1/offer", {"json": {"title": "t", "bid_price": 3}, "headers": seller.headers}),
        ("GET", f"/v1/offer/{offer_id}/bids", {"headers": seller.headers}),
        ("POST", "/v1/bid", {"json": {"offer_id": offer_id, "bid_price": 50}, "headers": seller.headers}),
        ("GET", f"/v1/bid/{uuid.uuid4()}", {"headers": seller.headers}),
        ("PUT", f"/v1/bid/{uuid.uuid4()}", {"headers": seller.headers}),
    ]
    for method, path, kwargs in calls:
        if only and not any(path == o or (o.endswith("/") and path.startswith(o)) for o in only):
            continue
        started = time.monotonic()
        status, body = await client.call(method, path, **kwargs)
        took = time.monotonic() - started
        assert status == 503, (method, path, status, body)
        assert body["status"] == 503 and "Traceback" not in str(body), body
        assert took < ANSWER_BOUND, (method, path, took)


async def test_services_answer_503_while_postgres_is_cut_and_recover_on_their_own(
    faulty_stack: Stack, database_proxy: FaultProxy, client: Client
) -> None:
    seller = await client.account("seller")
    status, offer = await client.create_offer(seller)
    assert status == 201, offer
    database_proxy.cut()
    for name in ("auth", "offers", "bids"):
        await wait_until(lambda: health_says(client, faulty_stack.ports[name], 503, postgres="down"), 20,
                         f"{name} /health to say postgres is down")
    assert await health_says(client, faulty_stack.ports["gateway"], 503, auth="down")
    await _every_route_says_503(client, seller, offer["id"])

    database_proxy.restore()
    for name in ("auth", "offers", "bids", "gateway"):
        await wait_until(lambda: health_says(client, faulty_stack.ports[name], 200), 30, f"{name} to recover")
    # The pools threw their dead connections away: the same processes serve again.
    status, body = await client.call("GET", f"/v1/offer/{offer['id']}", headers=seller.headers)
    assert status == 200, body
    assert (await client.account("after"))


async def test_a_stalled_postgres_gives_503_within_the_dependency_timeout_not_a_hang(
    faulty_stack: Stack, database_proxy: FaultProxy, client: Client
) -> None:
    seller = await client.account("seller")
    status, offer = await client.create_offer(seller)
    assert status == 201, offer
    # Connections stay open but nothing moves: only timeouts can notice.
    database_proxy.stall()
    await _every_route_says_503(client, seller, offer["id"], only=("/v1/login", "/v1/offer/", "/v1/bid"))
    await wait_until(lambda: health_says(client, faulty_stack.ports["offers"], 503, postgres="down"), 20,
                     "offers /health to say postgres is down")
    database_proxy.restore()
    await wait_until(lambda: health_says(client, faulty_stack.ports["offers"], 200), 30, "offers to recover")
    status, body = await client.call("GET", f"/v1/offer/{offer['id']}", headers=seller.headers)
    assert status == 200, body


async def test_bids_wait_in_their_queues_while_the_workers_database_is_cut(
    settings: Settings, faulty_stack: Stack, client: Client
) -> None:
    with proxy_for(settings.database_url) as worker_db:
        faulty_stack.start_worker(
            "rel-db-worker", DATABASE_URL=worker_db.url_for(settings.database_url)
        )
        seller = await client.account("seller")
        bidders = [await client.account("bidder") for _ in range(2)]
        status, offer = await client.create_offer(seller, price=1)
        assert status == 201, offer
        placed: list[ModelBid] = []

        async def bid_in_turn(n: int, seed: int) -> list[str]:
            """One at a time, so the queue's order is the order they were placed in."""
            ids = []
            for i in range(n):
                who = bidders[i % 2]
                price = Decimal((seed * 7919 + i * 104729) % 5000 + 100) / 100
                status, body = await client.bid(who, offer["id"], float(price))
                assert status == 202, body
                placed.append(ModelBid(body["id"], price, who.username))
                ids.append(body["id"])
            return ids

        await bid_in_turn(10, 1)
        worker_db.cut()
        waiting = await bid_in_turn(40, 2)
        rows = await fetch(settings.database_url, "SELECT id FROM bids WHERE id = ANY($1::uuid[])",
                           [uuid.UUID(b) for b in waiting])
        assert rows == []  # queued, not applied, while the worker cannot reach Postgres
        worker_db.restore()
        all_ids = [uuid.UUID(b.id) for b in placed]

        async def all_applied() -> bool:
            rows = await fetch(settings.database_url, "SELECT count(*) AS n FROM bids WHERE id = ANY($1::uuid[])",
                               all_ids)
            return rows[0]["n"] == len(all_ids)

        await wait_until(all_applied, 60, "the queued bids to be applied after the restore")

    model = run_model(Decimal("1.00"), placed)
    state = (await fetch(settings.database_url,
                         "SELECT bid_price, highest_bid_id, bid_count FROM offers WHERE id = $1",
                         uuid.UUID(offer["id"])))[0]
    assert state["bid_count"] == model.count == len(placed)
    assert state["bid_price"] == model.price
    assert str(state["highest_bid_id"]) == model.leader
    statuses = {str(r["id"]): (r["status"], r["reason"]) for r in await fetch(
        settings.database_url, "SELECT id, status, reason FROM bids WHERE offer_id = $1", uuid.UUID(offer["id"]))}
    assert statuses == {b.id: (model.status[b.id], model.reason[b.id]) for b in placed}
