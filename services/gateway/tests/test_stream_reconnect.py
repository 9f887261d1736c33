"""The gateway's offer feed survives the broker dropping its connection: queue re-declared, re-bound
(its users' private routes too), events flow again to sockets that stayed open. The connection is closed by RabbitMQ itself (its
management API), as an operator or a broker restart would."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from urllib.parse import quote

import aiohttp
from aiohttp.test_utils import TestClient

from auction_shared.config import Settings
from auction_shared.events import private_key
from gateway.app import create_app
from gateway.offer_feed import FEED
from tests.support.management import MANAGEMENT_API, MANAGEMENT_AUTH
from tests.support.publish import EventPublisher, bid_updated, offer_view
from tests.support.watch import Watch


async def _poll(check, deadline: float = 30.0, what: str = "condition"):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{what} not met in {deadline}s")


async def _connections_named(mgmt: aiohttp.ClientSession, name: str) -> list[str]:
    async with mgmt.get(
        f"{MANAGEMENT_API}/connections", params={"columns": "name,client_properties"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        rows = await resp.json()
    return [r["name"] for r in rows if r.get("client_properties", {}).get("connection_name") == name]


async def test_after_the_broker_drops_the_gateways_connection_public_and_private_events_flow_again(
    aiohttp_client, offers_client: TestClient, make_user, settings: Settings
):
    name = f"test-gateway-{uuid.uuid4().hex[:8]}"
    # Named, to find it in the management API; a short reconnect interval keeps the test quick.
    amqp_url = f"{settings.amqp_url}?name={name}&reconnect_interval=0.5"
    routed = replace(settings, amqp_url=amqp_url, offers_url=str(offers_client.make_url("")).rstrip("/"))
    gateway = await aiohttp_client(create_app(routed))
    feed = gateway.server.app[FEED]
    user = await make_user("watcher")

    async def created_offer_reaches(watch: Watch) -> None:
        resp = await offers_client.post(
            "/v1/offer", json={"title": "lot", "bid_price": 5}, headers=user.headers
        )
        assert resp.status == 201, await resp.text()
        offer_id = (await resp.json())["id"]
        await watch.until(lambda f: f["event"] == "offerCreated" and f["data"]["id"] == offer_id)

    async def up() -> bool:
        return feed.is_up()

    await _poll(up, what="the feed to subscribe")
    watch = await Watch.open(gateway.session, str(gateway.make_url("")).rstrip("/"), user.token)
    await created_offer_reaches(watch)

    async with aiohttp.ClientSession(headers=MANAGEMENT_AUTH) as mgmt:
        [before] = await _poll(lambda: _connections_named(mgmt, name), what="the connection to be listed")
        async with mgmt.delete(
            f"{MANAGEMENT_API}/connections/{quote(before, safe='')}", headers={"X-Reason": "test: drop it"}
        ) as resp:
            assert resp.status == 204, await resp.text()

        async def resubscribed() -> bool:
            return feed.resubscribed == 1 and feed.is_up()

        await _poll(resubscribed, what="the feed to reconnect and subscribe again")
        async with mgmt.get(
            f"{MANAGEMENT_API}/queues/%2F/{quote(feed.queue_name, safe='')}/bindings"
        ) as resp:
            bindings = await resp.json()
        for key in ("offer.*", private_key(user.user_id)):
            assert any(
                b["source"] == f"{settings.amqp_prefix}.events" and b["routing_key"] == key for b in bindings
            ), key

    # The same socket, open all along, gets the next event, and its user's private events.
    await created_offer_reaches(watch)
    private = bid_updated(user.user_id, offer_view(str(uuid.uuid4()), 2))
    async with EventPublisher(settings) as publisher:
        await publisher.publish(private)
    got = await watch.until(lambda f: f["event"] == "bidUpdated")
    assert got["data"]["bid"]["id"] == private.changes[0].bid["id"]
    health = await (await gateway.get("/health")).json()
    assert health["dependencies"]["rabbitmq"] == "up"
