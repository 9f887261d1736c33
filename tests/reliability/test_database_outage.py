"""PostgreSQL cut or stalled under real service processes: 503s within a bound, then recovery on its own."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from functools import partial

from auction_shared.config import Settings
from tests.reliability.conftest import DEPENDENCY_TIMEOUT, proxy_for
from tests.reliability.probes import fetch, health_says
from tests.support.api import Account, Api
from tests.support.faultproxy import FaultProxy
from tests.support.model import ModelBid, run_model
from tests.support.processes import Stack
from tests.support.waiting import wait_until

# A request that needs the missing database must be answered by then (the gateway's own upstream
# timeout is DEPENDENCY_TIMEOUT; the rest is slack for a loaded machine), never hang.
ANSWER_BOUND = 3 * float(DEPENDENCY_TIMEOUT) + 5


async def _every_route_says_503(
    client: Api, seller: Account, offer_id: str, only: tuple[str, ...] = ()
) -> None:
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


async def _say_postgres_is_down(client: Api, stack: Stack, *names: str) -> None:
    """Wait until each of `names` answers /health 503 with postgres down."""
    for name in names:
        await wait_until(
            partial(health_says, client, stack.ports[name], 503, postgres="down"),
            20,
            f"{name} /health to say postgres is down",
        )


async def _recover(
    client: Api,
    stack: Stack,
    database_proxy: FaultProxy,
    names: tuple[str, ...],
    seller: Account,
    offer_id: str,
) -> None:
    """Restore Postgres and wait until `names` say they are healthy again."""
    database_proxy.restore()
    for name in names:
        await wait_until(partial(health_says, client, stack.ports[name], 200), 30, f"{name} to recover")
    # The pools threw their dead connections away: the same processes serve again.
    status, body = await client.get(seller, f"/v1/offer/{offer_id}")
    assert status == 200, body


async def test_services_answer_503_while_postgres_is_cut_and_recover_on_their_own(
    faulty_stack: Stack, database_proxy: FaultProxy, client: Api
) -> None:
    seller = await client.account("seller")
    offer = await client.create_offer(seller)
    database_proxy.cut()
    await _say_postgres_is_down(client, faulty_stack, "auth", "offers", "bids")
    assert await health_says(client, faulty_stack.ports["gateway"], 503, auth="down")
    await _every_route_says_503(client, seller, offer["id"])

    await _recover(
        client, faulty_stack, database_proxy, ("auth", "offers", "bids", "gateway"), seller, offer["id"]
    )
    assert await client.account("after")


async def test_a_stalled_postgres_gives_503_within_the_dependency_timeout_not_a_hang(
    faulty_stack: Stack, database_proxy: FaultProxy, client: Api
) -> None:
    seller = await client.account("seller")
    offer = await client.create_offer(seller)
    # Connections stay open but nothing moves: only timeouts can notice.
    database_proxy.stall()
    await _every_route_says_503(client, seller, offer["id"], only=("/v1/login", "/v1/offer/", "/v1/bid"))
    await _say_postgres_is_down(client, faulty_stack, "offers")
    await _recover(client, faulty_stack, database_proxy, ("offers",), seller, offer["id"])


async def test_bids_wait_in_their_queues_while_the_workers_database_is_cut(
    settings: Settings, faulty_stack: Stack, client: Api
) -> None:
    with proxy_for(settings.database_url) as worker_db:
        faulty_stack.start_worker("rel-db-worker", DATABASE_URL=worker_db.url_for(settings.database_url))
        seller = await client.account("seller")
        bidders = [await client.account("bidder") for _ in range(2)]
        offer = await client.create_offer(seller, bid_price=1)
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
        rows = await fetch(
            settings.database_url,
            # Intake records each bid as pending; only the worker gives it its final status.
            "SELECT id FROM bids WHERE id = ANY($1::uuid[]) AND status <> 'pending'",
            [uuid.UUID(b) for b in waiting],
        )
        assert rows == []  # queued, not applied, while the worker cannot reach Postgres
        worker_db.restore()
        all_ids = [uuid.UUID(b.id) for b in placed]

        async def all_applied() -> bool:
            rows = await fetch(
                settings.database_url,
                "SELECT count(*) AS n FROM bids WHERE id = ANY($1::uuid[]) AND status <> 'pending'",
                all_ids,
            )
            return rows[0]["n"] == len(all_ids)

        await wait_until(all_applied, 60, "the queued bids to be applied after the restore")

    model = run_model(Decimal("1.00"), placed)
    state = (
        await fetch(
            settings.database_url,
            "SELECT bid_price, highest_bid_id, bid_count FROM offers WHERE id = $1",
            uuid.UUID(offer["id"]),
        )
    )[0]
    assert state["bid_count"] == model.count == len(placed)
    assert state["bid_price"] == model.price
    assert str(state["highest_bid_id"]) == model.leader
    statuses = {
        str(r["id"]): (r["status"], r["reason"])
        for r in await fetch(
            settings.database_url,
            "SELECT id, status, reason FROM bids WHERE offer_id = $1",
            uuid.UUID(offer["id"]),
        )
    }
    assert statuses == {b.id: (model.status[b.id], model.reason[b.id]) for b in placed}
