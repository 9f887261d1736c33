"""Idempotency-Key of POST /v1/bid: a replay names the first bid, another bid under the key is 422,
and a key is free again after its retention. (Replays while the broker fails: the next file.)"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from bids.store import KEY_RETENTION_SECONDS, forget_expired_requests
from tests.support.api import Account
from tests.support.inprocess import accounts, new_offer, place_bid

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


async def test_a_replayed_key_answers_the_first_bid_and_queues_nothing_new(world, bid_tap):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    key = uuid.uuid4().hex
    s1, first, h1 = await place_bid(world, alice, offer["id"], 12, key, max_price=20)
    s2, again, h2 = await place_bid(world, alice, offer["id"], 12, key, max_price=20)
    assert s1 == s2 == 202 and again == first
    assert h2["Idempotent-Replayed"] == "true" and h2["Location"] == h1["Location"]
    # A bid after both, from the same intake: everything queued before it has reached the tap.
    _, sentinel, _ = await place_bid(world, alice, offer["id"], 13)
    assert [str(b.bid_id) for b in await bid_tap.bids_until(sentinel["id"])] == [first["id"], sentinel["id"]]


@pytest.mark.parametrize(
    "changed", [{"bid_price": 13}, {"max_price": 21}, {"max_price": None}, {"offer": "other"}]
)
async def test_the_same_key_with_another_bid_is_a_422_and_queues_nothing(world, bid_tap, changed):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer, other = await new_offer(world, owner), await new_offer(world, owner)
    key = uuid.uuid4().hex
    _, first, _ = await place_bid(world, alice, offer["id"], 12, key, max_price=20)
    body = {"bid_price": 12, "max_price": 20, **changed}
    target = other["id"] if body.pop("offer", None) else offer["id"]
    resp = await world.bids.post(
        "/v1/bid", json={"offer_id": target, **body}, headers={**alice.headers, "Idempotency-Key": key}
    )
    assert resp.status == 422 and resp.content_type == PROBLEM
    assert "Idempotency-Key" in {e["field"] for e in (await resp.json())["errors"]}
    _, sentinel, _ = await place_bid(world, alice, offer["id"], 14)
    assert [str(b.bid_id) for b in await bid_tap.bids_until(sentinel["id"])] == [first["id"], sentinel["id"]]


async def age_past_retention(db: asyncpg.Connection, user: Account, key: str) -> None:
    await db.execute(
        "UPDATE bid_requests SET created_at = now() - make_interval(secs => $2 + 1)"
        " WHERE user_id = $1 AND idempotency_key = $3",
        uuid.UUID(user.user_id),
        KEY_RETENTION_SECONDS,
        key,
    )


async def test_a_key_past_its_retention_is_free_again_and_is_deleted(world, db, settings):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    old, kept = uuid.uuid4().hex, uuid.uuid4().hex
    _, first, _ = await place_bid(world, alice, offer["id"], 12, old)
    _, recent, _ = await place_bid(world, alice, offer["id"], 12, kept)
    await age_past_retention(db, alice, old)
    # Expired: the key names a new bid (another body is no 422 now).
    status, fresh, headers = await place_bid(world, alice, offer["id"], 15, old)
    assert status == 202 and fresh["id"] != first["id"] and "Idempotent-Replayed" not in headers
    status, again, _ = await place_bid(world, alice, offer["id"], 15, old)
    assert status == 202 and again == fresh
    # The periodic cleanup deletes only keys past their retention.
    await age_past_retention(db, alice, old)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        assert await forget_expired_requests(pool) >= 1
    finally:
        await pool.close()
    keys = await db.fetch(
        "SELECT idempotency_key FROM bid_requests WHERE user_id = $1", uuid.UUID(alice.user_id)
    )
    assert [r["idempotency_key"] for r in keys] == [kept]
    assert (await place_bid(world, alice, offer["id"], 12, kept))[1] == recent
