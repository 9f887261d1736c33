"""Bid intake and bid reads of the bids service, straight on the real app (no worker runs here)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from tests.support.inprocess import account, new_offer
from tests.support.pipeline import BidTap
from tests.support.waiting import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


async def place(world, who, offer_id: str, price: float, base: str = "/v1/bid"):
    return await world.bids.post(base, json={"offer_id": offer_id, "bid_price": price}, headers=who.headers)


async def set_offer(settings, offer_id: str, sql: str) -> None:
    """Move an offer to a state no public route reaches directly (sold, or past its end)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"UPDATE offers SET {sql} WHERE id = $1", uuid.UUID(offer_id))
    finally:
        await conn.close()


async def test_a_bid_is_answered_202_pending_with_where_to_read_it(world):
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer = await new_offer(world, owner)
    before = datetime.now(timezone.utc)
    resp = await world.bids.post(
        "/v1/bid", json={"offer_id": offer["id"], "bid_price": 6832427.5}, headers=bidder.headers
    )
    assert resp.status == 202, await resp.text()
    bid = await resp.json()
    uuid.UUID(bid["id"])
    assert resp.headers["Location"] == f"/v1/bid/{bid['id']}"
    assert {k: bid[k] for k in bid if k not in ("id", "timestamp")} == {
        "offer_id": offer["id"],
        "bid_price": 6832427.5,
        "username": bidder.username,
        "status": "pending",
        "reason": None,
        "accepted": False,
        "max_price": None,
    }
    stamp = datetime.fromisoformat(bid["timestamp"])
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)


async def test_the_plural_alias_takes_bids_too(world):
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer = await new_offer(world, owner)
    resp = await place(world, bidder, offer["id"], 11, base="/v1/bids")
    assert resp.status == 202 and (await resp.json())["status"] == "pending"


async def test_a_low_price_is_queued_not_judged_at_intake(world, settings):
    # docs/API.md: the price is judged by the worker, in order, not here.
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer = await new_offer(world, owner, bid_price=500)
    async with BidTap(settings) as tap:
        resp = await place(world, bidder, offer["id"], 1)
        assert resp.status == 202
        bid_id = (await resp.json())["id"]
        await wait_until(lambda: bid_id in tap.seen, 30, "the low bid on the broker")
    queued = [b for b in tap.order[offer["id"]] if b.id == bid_id]
    assert [(b.price, b.username) for b in queued] == [(Decimal("1"), bidder.username)]


async def test_a_sold_offer_takes_no_bid(world, settings):
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer = await new_offer(world, owner)
    await set_offer(
        settings, offer["id"], "sold = true, sold_at = now(), status = 'sold', end_reason = 'accepted'"
    )
    resp = await place(world, bidder, offer["id"], 50)
    assert resp.status == 409 and resp.content_type == PROBLEM
    assert "sold" in (await resp.json())["detail"]


async def test_a_closed_offer_takes_no_bid(world, settings):
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer = await new_offer(world, owner, lifetime=60)
    await set_offer(
        settings, offer["id"], "go_live = now() - interval '2 hours', ends_at = now() - interval '1 hour'"
    )
    resp = await place(world, bidder, offer["id"], 50)
    assert resp.status == 409 and resp.content_type == PROBLEM
    assert "closed" in (await resp.json())["detail"]


async def test_bidding_on_your_own_offer_is_403(world):
    owner = await account(world.auth, "owner")
    offer = await new_offer(world, owner)
    resp = await place(world, owner, offer["id"], 50)
    assert resp.status == 403 and resp.content_type == PROBLEM


async def test_an_offer_created_a_moment_ago_is_biddable_at_once(world):
    # Unknown ids are not cached by the intake's offer cache: a miss must not hide a new offer.
    owner, bidder = await account(world.auth, "owner"), await account(world.auth, "bidder")
    offer_id = str(uuid.uuid4())
    missing = await place(world, bidder, offer_id, 5)
    assert missing.status == 404
    offer = await new_offer(world, owner)
    resp = await place(world, bidder, offer["id"], 50)
    assert resp.status == 202


@pytest.mark.parametrize("bid_id", [str(uuid.uuid4()), "not-a-uuid", "0"])
async def test_an_unknown_or_malformed_bid_id_is_404(world, bid_id):
    user = await account(world.auth)
    for base in ("/v1/bid", "/v1/bids"):
        resp = await world.bids.get(f"{base}/{bid_id}", headers=user.headers)
        assert resp.status == 404 and resp.content_type == PROBLEM


async def test_an_offer_without_bids_lists_none(world):
    owner = await account(world.auth, "owner")
    offer = await new_offer(world, owner)
    for base in ("/v1/offer", "/v1/offers"):
        resp = await world.bids.get(f"{base}/{offer['id']}/bids?size=5&page=0", headers=owner.headers)
        assert resp.status == 200
        assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("offer_id", [str(uuid.uuid4()), "nope"])
async def test_bids_of_an_unknown_or_malformed_offer_are_404(world, offer_id):
    user = await account(world.auth)
    resp = await world.bids.get(f"/v1/offer/{offer_id}/bids", headers=user.headers)
    assert resp.status == 404 and resp.content_type == PROBLEM


@pytest.mark.parametrize("query, field", [("size=0", "size"), ("size=101", "size"), ("page=-1", "page")])
async def test_bad_paging_of_bids_is_400(world, query, field):
    owner = await account(world.auth, "owner")
    offer = await new_offer(world, owner)
    resp = await world.bids.get(f"/v1/offer/{offer['id']}/bids?{query}", headers=owner.headers)
    assert resp.status == 400
    assert field in {e["field"] for e in (await resp.json())["errors"]}


async def test_health_names_postgres_and_rabbitmq(world):
    resp = await world.bids.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "dependencies": {"postgres": "up", "rabbitmq": "up"}}
