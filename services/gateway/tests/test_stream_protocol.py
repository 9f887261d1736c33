"""`GET /v1/stream` protocol rules (docs/API.md), each with its error or close code.

The gateway runs in the test's process, routed to a real offers app; both use the real PostgreSQL and
RabbitMQ, so `offerCreated` here travels the outbox, the broker and this gateway's own queue.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aio_pika
import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from auction_shared.broker import Topology
from auction_shared.events import OfferCreated
from auction_shared.tokens import issue_token
from gateway.hub import HUB
from tests.support.waiting import wait_until
from tests.support.watch import Watch

CLOSE_UNAUTHORIZED = 4401


def base(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def watch(client: TestClient, token: str | None = None, **kwargs: object) -> Watch:
    return await Watch.open(client.session, base(client), token, **kwargs)


async def create_offer(offers_client: TestClient, user, **body: object) -> dict:
    body = {"title": "lot " + uuid.uuid4().hex[:6], "bid_price": 10, **body}
    resp = await offers_client.post("/v1/offer", json=body, headers=user.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


# --- authentication ------------------------------------------------------------------------------


async def test_authenticate_answers_with_the_username_and_when_the_token_expires(gateway, make_user):
    user = await make_user("watcher")
    w = await watch(gateway)
    reply = await w.authenticate(user.token)
    assert reply["event"] == "authenticated"
    assert reply["data"]["username"] == user.username
    assert reply["data"]["expires_at"].endswith("+00:00")
    assert len(gateway.server.app[HUB]) == 1


@pytest.mark.parametrize(
    "first",
    [
        pytest.param({"event": "get_offers"}, id="get_offers-before-authenticate"),
        pytest.param(
            {"event": "subscribe", "offer_id": str(uuid.uuid4())}, id="subscribe-before-authenticate"
        ),
        pytest.param("{not json", id="malformed-json"),
        pytest.param("[1, 2]", id="json-but-not-an-object"),
        pytest.param(b"\x00\x01", id="binary-frame"),
    ],
)
async def test_a_first_message_other_than_authenticate_gets_an_error_and_close_4401(
    gateway, make_user, first
):
    user = await make_user("watcher")
    w = await watch(gateway)
    if isinstance(first, dict):
        fields = dict(first)
        await w.send(fields.pop("event"), user.token, **fields)
    elif isinstance(first, bytes):
        await w.ws.send_bytes(first)
    else:
        await w.send_raw(first)
    assert await w.close_code() == CLOSE_UNAUTHORIZED
    assert [f["event"] for f in w.frames] == ["error"]
    assert "authenticate" in w.frames[0]["error"]


@pytest.mark.parametrize("token", ["", "not-a-jwt", "wrong-secret", "expired", None])
async def test_authenticate_without_a_valid_token_gets_an_error_and_close_4401(gateway, settings, token):
    if token == "wrong-secret":
        token = issue_token("x" * 32 + "other", uuid.uuid4(), "someone", 60)
    elif token == "expired":
        token = issue_token(settings.jwt_secret, uuid.uuid4(), "someone", -60)
    w = await watch(gateway)
    await w.send_raw(json.dumps({"event": "authenticate", "token": token}))
    assert await w.close_code() == CLOSE_UNAUTHORIZED
    assert [f["event"] for f in w.frames] == ["error"]
    assert len(gateway.server.app[HUB]) == 0


@pytest.mark.parametrize("token", ["missing", "garbage", "other-user", "expired"])
async def test_a_later_message_without_a_valid_token_of_the_same_user_closes_4401(
    gateway, make_user, settings, token
):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    message = {"event": "get_offers", "size": 1}
    if token == "garbage":
        message["token"] = "garbage"
    elif token == "other-user":
        message["token"] = (await make_user("other")).token
    elif token == "expired":
        message["token"] = issue_token(settings.jwt_secret, uuid.UUID(user.user_id), user.username, -60)
    await w.send_raw(json.dumps(message))
    assert await w.close_code() == CLOSE_UNAUTHORIZED
    assert [f["event"] for f in w.frames] == ["authenticated", "error"]


async def test_authenticate_again_with_the_same_users_token_is_answered_and_another_users_closes(
    gateway, make_user
):
    user, other = await make_user("watcher"), await make_user("other")
    w = await watch(gateway, user.token)
    assert (await w.authenticate(user.token))["event"] == "authenticated"
    w.token = other.token
    await w.send("authenticate")
    assert await w.close_code() == CLOSE_UNAUTHORIZED
    assert w.frames[-1]["error"] == "the token belongs to another user"


async def test_the_socket_closes_4401_when_the_token_expires(gateway, make_user, settings):
    user = await make_user("watcher")
    # 3 s: whole-second claims leave it 2 to 3 s, time enough to authenticate before it expires.
    short = issue_token(settings.jwt_secret, uuid.UUID(user.user_id), user.username, 3)
    w = await watch(gateway, short)
    assert w.frames[-1]["event"] == "authenticated"
    assert await w.close_code() == CLOSE_UNAUTHORIZED
    assert w.frames[-1] == {"event": "error", "error": "token has expired"}


async def test_a_newer_token_of_the_same_user_keeps_the_socket_open_past_the_first_ones_expiry(
    gateway, make_user, settings
):
    user = await make_user("watcher")
    # `iat` and `exp` are whole seconds, so a token of n seconds has between n-1 and n left when it is
    # issued: 3 leaves time to authenticate with it. The wait runs to its `exp` claim, not a guess.
    short = issue_token(settings.jwt_secret, uuid.UUID(user.user_id), user.username, 3)
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    w = await watch(gateway, short)
    assert w.frames[-1]["event"] == "authenticated"
    assert (await w.request("get_offers", "offers", token=user.token, size=1))["event"] == "offers"
    await wait_until(lambda: time.time() > expires + 1, 10, "the short token to expire")
    w.token = user.token
    assert (await w.request("get_offers", "offers", size=1))["event"] == "offers"


# --- errors that keep the socket open ------------------------------------------------------------


async def test_malformed_json_unknown_events_and_binary_frames_after_authentication_get_an_error_only(
    gateway, make_user
):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    await w.send_raw("{oops")
    assert (await w.next())["event"] == "error"
    await w.send_raw('"a string"')
    assert (await w.next())["event"] == "error"
    await w.ws.send_bytes(b"{}")
    assert (await w.next())["event"] == "error"
    await w.send("dance")
    assert await w.next() == {"event": "error", "error": "unknown event 'dance'"}
    await w.send_raw(json.dumps({"event": 7, "token": user.token}))
    assert (await w.next())["event"] == "error"
    # Still open and still authenticated.
    assert (await w.request("get_offers", "offers", size=1))["event"] == "offers"


async def test_a_message_over_64_kib_closes_1009(gateway, make_user):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    await w.send("get_offers", sortkey="x" * (65 * 1024))
    assert await w.close_code() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


# --- get_offers -----------------------------------------------------------------------------------


async def test_get_offers_pages_and_sorts_like_the_http_api(gateway, offers_client, make_user):
    user = await make_user("seller")
    for price in (3, 1, 2):
        await create_offer(offers_client, user, bid_price=price)
    w = await watch(gateway, user.token)
    for event in ("get_offers", "get_offer"):
        query = {"page": 1, "size": 2, "sortKey": "-created"}
        resp = await offers_client.get("/v1/offer", params=query, headers=user.headers)
        expected = await resp.json()
        reply = await w.request(event, "offers", page=1, size=2, sortkey="-created")
        assert reply == {"event": "offers", "data": expected}
    default = await w.request("get_offers", "offers")
    assert 1 <= len(default["data"]) <= 10


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"page": -1}, "page"),
        ({"page": True}, "page"),
        ({"size": [1]}, "size"),
        ({"sortkey": "price"}, "sort"),
    ],
)
async def test_get_offers_with_bad_paging_gets_an_error_and_stays_open(gateway, make_user, fields, says):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    reply = await w.request("get_offers", "offers", **fields)
    assert reply["event"] == "error" and says in reply["error"].lower(), reply
    assert (await w.request("get_offers", "offers", size=1))["event"] == "offers"


# --- subscriptions --------------------------------------------------------------------------------


async def test_subscribe_and_unsubscribe_answer_with_the_offer_id(gateway, offers_client, make_user):
    user = await make_user("watcher")
    offer = await create_offer(offers_client, user)
    w = await watch(gateway, user.token)
    assert await w.request("subscribe", "subscribed", offer_id=offer["id"]) == {
        "event": "subscribed",
        "data": {"offer_id": offer["id"]},
    }
    # Subscribing twice is harmless; unsubscribing once ends it.
    assert (await w.request("subscribe", "subscribed", offer_id=offer["id"].upper()))["event"] == "subscribed"
    assert await w.request("unsubscribe", "unsubscribed", offer_id=offer["id"]) == {
        "event": "unsubscribed",
        "data": {"offer_id": offer["id"]},
    }
    again = await w.request("unsubscribe", "unsubscribed", offer_id=offer["id"])
    assert again == {"event": "error", "error": f"not subscribed to offer {offer['id']}"}


@pytest.mark.parametrize("offer_id", ["unknown", "not-a-uuid", 42, None, "x" * 100])
@pytest.mark.parametrize("event", ["subscribe", "unsubscribe"])
async def test_subscribing_to_an_unknown_or_malformed_offer_id_gets_an_error(
    gateway, make_user, event, offer_id
):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    if offer_id == "unknown":
        offer_id = str(uuid.uuid4())
    reply = await w.request(event, event + "d", offer_id=offer_id)
    assert reply["event"] == "error", reply
    if isinstance(offer_id, str) and len(offer_id) == 36:
        assert offer_id in reply["error"]
    assert not w.ws.closed
    assert (await w.request("get_offers", "offers", size=1))["event"] == "offers"


# --- live events ----------------------------------------------------------------------------------


async def test_offer_created_reaches_every_authenticated_watcher_and_no_anonymous_socket(
    gateway, offers_client, make_user
):
    seller = await make_user("seller")
    watchers = [await watch(gateway, (await make_user("watcher")).token) for _ in range(3)]
    anonymous = await watch(gateway)
    offer = await create_offer(offers_client, seller)
    for w in watchers:
        frame = await w.until(lambda f: f["event"] == "offerCreated" and f["data"]["id"] == offer["id"])
        assert frame["data"] == offer
    # Frames are written in order: had the anonymous socket been sent the event, it would come first.
    reply = await anonymous.authenticate(seller.token)
    assert anonymous.frames == [reply] and reply["event"] == "authenticated"


async def test_a_redelivered_event_reaches_a_watcher_once(gateway, make_user, settings):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    offer = {"id": str(uuid.uuid4()), "title": "copy"}
    event = OfferCreated(offer)
    marker = OfferCreated({"id": str(uuid.uuid4()), "title": "marker"})
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Topology.from_settings(settings).events_exchange)
        for e in (event, event, marker):  # at least once: the outbox may publish a row twice
            await exchange.publish(
                aio_pika.Message(e.encode(), message_id=e.event_id), routing_key=e.routing_key
            )
    finally:
        await connection.close()
    await w.until(lambda f: f["event"] == "offerCreated" and f["data"]["id"] == marker.offer_id)
    assert [f["data"]["id"] for f in w.of("offerCreated")] == [offer["id"], marker.offer_id]


# --- the handshake --------------------------------------------------------------------------------


async def test_origins_not_in_ws_allowed_origins_get_403_before_the_upgrade(start_gateway, make_user):
    gateway = await start_gateway(ws_allowed_origins=("https://auction.example",))
    user = await make_user("watcher")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await watch(gateway, user.token, origin="https://evil.example")
    assert refused.value.status == 403
    resp = await gateway.get("/v1/stream", headers={"Origin": "https://evil.example", "Upgrade": "websocket"})
    assert resp.status == 403 and resp.content_type == "application/problem+json"
    # The allowed origin, the gateway's own page (same host) and clients without Origin get in.
    for origin in ("https://auction.example", f"http://{gateway.host}:{gateway.port}", None):
        kwargs = {"origin": origin} if origin else {}
        w = await watch(gateway, user.token, **kwargs)
        assert w.frames[-1]["event"] == "authenticated"
        await w.close()


async def test_a_plain_get_on_the_stream_is_426_problem(gateway):
    resp = await gateway.get("/v1/stream")
    assert resp.status == 426
    assert resp.content_type == "application/problem+json"


async def test_the_server_declines_per_message_compression(gateway, make_user):
    user = await make_user("watcher")
    w = await watch(gateway, user.token, compress=15)
    assert w.ws.compress == 0


async def test_a_peer_that_never_answers_pings_is_dropped(start_gateway, make_user):
    gateway = await start_gateway(ws_heartbeat_seconds=0.5)
    hub = gateway.server.app[HUB]
    user = await make_user("watcher")
    w = await watch(gateway, user.token, autoping=False)
    assert len(hub) == 1
    while True:  # the client sees pings it does not answer, then the connection ends
        msg = await w.ws.receive(timeout=20)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
        assert msg.type is aiohttp.WSMsgType.PING
    await wait_until(lambda: len(hub) == 0, 20.0, "the hub to forget the dead peer")


async def test_a_gateway_shutting_down_closes_its_sockets_with_1001(gateway, make_user):
    user = await make_user("watcher")
    w = await watch(gateway, user.token)
    closing = asyncio.create_task(gateway.server.close())
    assert await w.close_code() == aiohttp.WSCloseCode.GOING_AWAY
    await closing


async def test_health_names_rabbitmq(gateway):
    resp = await gateway.get("/health")
    body = await resp.json()
    assert body["dependencies"]["rabbitmq"] == "up"
