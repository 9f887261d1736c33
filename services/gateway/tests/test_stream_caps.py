"""The WebSocket's caps (docs/API.md, Live updates): authenticate in time, sockets per user and in total, and
a user that no longer exists. Each refusal is an `error` frame, then the close code docs/API.md names.
(The byte bound of a socket's queue is in tests/live/test_live_updates.py, with a real silent reader.)
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import asyncpg
from aiohttp.test_utils import TestClient

from auction_shared.config import Settings
from gateway.app import create_app
from gateway.hub import HUB
from gateway.offer_feed import FEED
from tests.support.waiting import wait_until
from tests.support.watch import Watch

CLOSE_UNAUTHORIZED = 4401
CLOSE_REFUSED = 1008


def base(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def refused(w: Watch, code: int) -> str:
    """The error the server sent before closing with `code`."""
    assert await w.close_code() == code
    errors = w.of("error")
    assert len(errors) == 1, w.frames
    return str(errors[0]["error"])


async def test_a_socket_that_does_not_authenticate_in_time_is_closed_4401(start_gateway, make_user):
    gateway = await start_gateway(ws_auth_timeout_seconds=0.5)
    silent = await Watch.open(gateway.session, base(gateway))
    assert "authenticate within 0.5 seconds" in await refused(silent, CLOSE_UNAUTHORIZED)
    # One that authenticates in time stays open past the deadline.
    user = await make_user("prompt")
    prompt = await Watch.open(gateway.session, base(gateway), user.token)
    await wait_until(lambda: gateway.server.app[HUB].connected == 1, 20.0, "the silent socket to go")
    reply = await prompt.request("get_offers", "offers", size=1)
    assert reply["event"] == "offers"


async def test_sockets_over_the_per_user_cap_are_refused_1008_and_others_users_are_not(
    start_gateway, make_user
):
    gateway = await start_gateway(ws_max_sockets_per_user=2)
    alice, bob = await make_user("alice"), await make_user("bob")
    first = [await Watch.open(gateway.session, base(gateway), alice.token) for _ in range(2)]
    third = await Watch.open(gateway.session, base(gateway))
    await third.send("authenticate", token=alice.token)
    assert "too many sockets for this user (at most 2)" in await refused(third, CLOSE_REFUSED)
    assert (await Watch.open(gateway.session, base(gateway), bob.token)).of("authenticated")
    # A slot freed is a slot to take.
    await first[0].close()
    await wait_until(
        lambda: gateway.server.app[HUB].sockets_of(uuid.UUID(alice.user_id)) == 1, 20.0, "a slot"
    )
    again = await Watch.open(gateway.session, base(gateway), alice.token)
    assert again.of("authenticated")


async def test_sockets_over_the_total_cap_are_refused_1008_before_they_authenticate(start_gateway, make_user):
    gateway = await start_gateway(ws_max_sockets=2)
    user = await make_user("many")
    held = [await Watch.open(gateway.session, base(gateway), user.token) for _ in range(2)]
    extra = await Watch.open(gateway.session, base(gateway))
    assert "too many sockets on this server" in await refused(extra, CLOSE_REFUSED)
    await held[0].close()
    await wait_until(lambda: gateway.server.app[HUB].connected == 1, 20.0, "the closed socket to go")
    assert (await Watch.open(gateway.session, base(gateway), user.token)).of("authenticated")


async def test_a_deleted_user_is_refused_at_authenticate_and_on_the_next_message(
    aiohttp_client, make_user, settings: Settings
):
    from offers.app import create_app as offers_app

    # Neither the offers service nor the gateway remembers an answer: the deletion shows at once.
    fresh = replace(settings, known_user_ttl_seconds=0.0)
    offers = await aiohttp_client(offers_app(fresh))
    gateway = await aiohttp_client(create_app(replace(fresh, offers_url=base(offers))))
    await wait_until(gateway.server.app[FEED].is_up, 20.0, "the gateway's feed to subscribe")
    staying, leaving, never = await make_user("staying"), await make_user("leaving"), await make_user("never")
    kept = await Watch.open(gateway.session, base(gateway), staying.token)
    doomed = await Watch.open(gateway.session, base(gateway), leaving.token)
    assert doomed.of("authenticated")

    db = await asyncpg.connect(settings.database_url)
    try:
        await db.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", [leaving.user_id, never.user_id])
    finally:
        await db.close()

    await doomed.send("get_offers", size=1)
    assert "no longer exists" in await refused(doomed, CLOSE_UNAUTHORIZED)
    late = await Watch.open(gateway.session, base(gateway))
    await late.send("authenticate", token=never.token)
    assert "no longer exists" in await refused(late, CLOSE_UNAUTHORIZED)
    assert (await kept.request("get_offers", "offers", size=1))["event"] == "offers"
