"""The gateway's HTTP side: liveness, health, routing, limits, and upstream problems and outages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.support.inprocess import account, running_world
from tests.support.processes import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"
LIMIT = 64 * 1024


async def health_when(client, ready, deadline: float = 20.0):
    """GET /health until `ready(status, body)` holds; the gateway's broker feed starts in the background."""
    end = time.monotonic() + deadline
    while True:
        resp = await client.get("/health")
        body = await resp.json()
        if ready(resp.status, body) or time.monotonic() > end:
            return resp.status, body
        await asyncio.sleep(0.05)


async def test_ping_says_ok(world):
    resp = await world.gateway.get("/ping")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {"status": "ok"}


async def test_health_is_200_naming_every_dependency_up(world):
    status, body = await health_when(world.gateway, lambda s, _: s == 200)
    assert status == 200, body
    assert body["status"] == "ok"
    assert {"auth", "offers", "bids"} <= set(body["dependencies"])
    assert set(body["dependencies"].values()) == {"up"}


async def test_health_is_503_naming_the_upstream_that_is_down(settings):
    async with running_world(settings, offers_url=f"http://127.0.0.1:{free_port()}") as w:
        status, body = await health_when(
            w.gateway, lambda _, b: all(v == "up" for k, v in b["dependencies"].items() if k != "offers")
        )
        assert status == 503
        assert body["status"] != "ok"
        assert body["dependencies"]["offers"] == "down"
        assert body["dependencies"]["auth"] == body["dependencies"]["bids"] == "up"


async def test_a_request_for_a_down_upstream_is_a_503_problem_and_others_still_work(settings):
    async with running_world(settings, offers_url=f"http://127.0.0.1:{free_port()}") as w:
        user = await account(w.gateway)  # auth is up: signup and login go through
        resp = await w.gateway.get("/v1/offer", headers=user.headers)
        assert resp.status == 503 and resp.content_type == PROBLEM
        assert resp.headers["Retry-After"]
        problem = await resp.json()
        assert problem["status"] == 503 and "offers" in problem["detail"]
        bids = await w.gateway.get(f"/v1/bid/{uuid.uuid4()}", headers=user.headers)
        assert bids.status == 404


@asynccontextmanager
async def silent_upstream(received: list[bytes]) -> AsyncIterator[str]:
    """A server that accepts connections and reads requests (into `received`) but never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.readline())
            await reader.read()  # until the gateway gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_upstream_that_never_answers_is_a_503_after_twice_the_dependency_timeout(settings):
    received: list[bytes] = []
    async with silent_upstream(received) as url:
        async with running_world(settings, bids_url=url, dependency_timeout=0.5) as w:
            user = await account(w.gateway)
            bid_id = uuid.uuid4()
            asked_at = time.monotonic()
            resp = await w.gateway.get(f"/v1/bid/{bid_id}", headers=user.headers)
            waited = time.monotonic() - asked_at
            assert resp.status == 503 and resp.content_type == PROBLEM
            assert "bids" in (await resp.json())["detail"]
    # The gateway did send the request on and waited out the timeout for an answer: a 503 at once
    # (say, a refused connection) would not have reached the upstream or would come sooner.
    assert received and received[0].startswith(f"GET /v1/bid/{bid_id} ".encode())
    # Twice: the service may wait on two dependencies in turn, and its own answer is the one to give.
    assert waited >= 2 * 0.5


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/nope"), ("GET", "/v1/offer/a/b"), ("POST", "/v1/unknown"), ("GET", "/v2/offer")],
)
async def test_an_unknown_route_is_a_404_problem(world, method, path):
    user = await account(world.gateway)
    resp = await world.gateway.request(method, path, headers=user.headers)
    assert resp.status == 404 and resp.content_type == PROBLEM
    assert (await resp.json())["status"] == 404


async def test_a_wrong_method_is_a_405_problem_with_allow(world):
    resp = await world.gateway.patch("/v1/offer", json={})
    assert resp.status == 405 and resp.content_type == PROBLEM
    assert "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]


async def test_a_body_above_64_kib_is_a_413_problem(world):
    user = await account(world.gateway)
    too_big = b'{"title": "' + b"x" * LIMIT + b'", "bid_price": 1}'
    for path, headers in (("/v1/signup", {}), ("/v1/offer", user.headers)):
        resp = await world.gateway.post(
            path, data=too_big, headers={**headers, "Content-Type": "application/json"}
        )
        assert resp.status == 413, path
        assert resp.content_type == PROBLEM and (await resp.json())["status"] == 413


async def test_a_body_of_exactly_64_kib_is_let_through(world):
    # The limit is "larger than 64 KiB": this one reaches auth, which finds the username too long.
    filler = LIMIT - len(b'{"username": "", "password": "pass"}')
    body = b'{"username": "' + b"u" * filler + b'", "password": "pass"}'
    assert len(body) == LIMIT
    resp = await world.gateway.post("/v1/signup", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "username"


async def same_problem_both_ways(world, service: str, method: str, path: str, **kw) -> int:
    """Send one request through the gateway and straight to the service: the answers must match."""
    via_gateway = await world.gateway.request(method, path, **kw)
    direct = await world.services[service].request(method, path, **kw)
    assert via_gateway.status == direct.status
    assert via_gateway.headers["Content-Type"] == direct.headers["Content-Type"] == PROBLEM
    assert await via_gateway.read() == await direct.read()
    return via_gateway.status


async def test_upstream_problems_pass_through_unchanged(world):
    user = await account(world.gateway, "taken")
    taken = {"username": user.username, "password": "baku"}
    assert await same_problem_both_ways(world, "auth", "POST", "/v1/signup", json=taken) == 409
    bad_offer = {"title": "", "bid_price": 1.234}
    assert (
        await same_problem_both_ways(
            world, "offers", "POST", "/v1/offer", json=bad_offer, headers=user.headers
        )
        == 400
    )
    assert (
        await same_problem_both_ways(
            world, "offers", "GET", f"/v1/offer/{uuid.uuid4()}", headers=user.headers
        )
        == 404
    )
    unknown_offer = {"offer_id": str(uuid.uuid4()), "bid_price": 1}
    assert (
        await same_problem_both_ways(
            world, "bids", "POST", "/v1/bid", json=unknown_offer, headers=user.headers
        )
        == 404
    )


async def test_a_wrong_password_keeps_the_services_www_authenticate(world):
    user = await account(world.gateway)
    resp = await world.gateway.post("/v1/login", json={"username": user.username, "password": "wrong"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_gateway_relays_the_headers_clients_need(world):
    owner, bidder = await account(world.gateway, "owner"), await account(world.gateway, "bidder")
    created = await world.gateway.post(
        "/v1/offers", json={"title": "Relay", "bid_price": 2}, headers=owner.headers
    )
    assert created.status == 201
    offer = await created.json()

    listed = await world.gateway.get("/v1/offer?size=1&sortKey=-created", headers=owner.headers)
    assert listed.status == 200 and int(listed.headers["X-Total-Count"]) >= 1

    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await world.gateway.post(
        "/v1/bid", json={"offer_id": offer["id"], "bid_price": 3}, headers={**bidder.headers, **key}
    )
    assert first.status == 202
    assert first.headers["Location"] == f"/v1/bid/{(await first.json())['id']}"
    again = await world.gateway.post(
        "/v1/bid", json={"offer_id": offer["id"], "bid_price": 3}, headers={**bidder.headers, **key}
    )
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await first.json())["id"]
