"""Bid intake under the auction rules: proxy bids, closed offers, the pending record, own bids, keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from decimal import Decimal

import aio_pika
import asyncpg
import pytest
import pytest_asyncio

from auction_shared.broker import Topology, declare_events_exchange
from auction_shared.events import BidPlaced, EventType, decode
from bids.store import KEY_RETENTION_SECONDS, forget_expired_requests, record_pending
from tests.support.api import Account
from tests.support.inprocess import account, accounts, new_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


class Tap:
    """A queue of the test's own bound to `bid.placed`: what intake really queued."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue

    async def drain(self, settle: int = 5) -> list[BidPlaced]:
        """Every bid queued so far (waits for `settle` empty polls in a row after the last one)."""
        bids, empty = [], 0
        while empty < settle:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                empty += 1
                await asyncio.sleep(0.1)
                continue
            empty = 0
            event = decode(message.body)
            assert isinstance(event, BidPlaced)
            bids.append(event)
        return bids


@pytest_asyncio.fixture(loop_scope="module")
async def tap(settings) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    events = await declare_events_exchange(channel, Topology.from_settings(settings))
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(events, routing_key=EventType.BID_PLACED)
    yield Tap(queue)
    await connection.close()


async def bid(world, who: Account, offer_id: str, price, key: str | None = None, **extra):
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    resp = await world.bids.post(
        "/v1/bid", json={"offer_id": offer_id, "bid_price": price, **extra}, headers=headers
    )
    return resp.status, await resp.json(), resp.headers


async def test_a_proxy_bid_carries_its_max_price_to_the_queue_and_only_to_its_bidder(world, tap):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    await tap.drain(settle=1)
    status, placed, _ = await bid(world, alice, offer["id"], 10.5, max_price=40.25)
    assert status == 202 and placed["max_price"] == 40.25 and placed["status"] == "pending"
    (queued,) = [b for b in await tap.drain() if str(b.bid_id) == placed["id"]]
    assert queued.max_price == Decimal("40.25") and queued.bid_price == Decimal("10.50")
    mine = await (await world.bids.get(f"/v1/bid/{placed['id']}", headers=alice.headers)).json()
    sellers = await (await world.bids.get(f"/v1/bid/{placed['id']}", headers=owner.headers)).json()
    assert mine["max_price"] == 40.25 and sellers["max_price"] is None
    status, straight, _ = await bid(world, alice, offer["id"], 11)
    assert status == 202 and straight["max_price"] is None


@pytest.mark.parametrize(
    "max_price, message",
    [
        (9.99, "at least bid_price"),
        (0, "greater than 0"),
        (10**12, "less than"),
        (10.001, "decimal"),
        ("20", "number"),
    ],
)
async def test_a_bad_max_price_is_a_400_naming_it(world, max_price, message):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    status, problem, headers = await bid(world, alice, offer["id"], 10, max_price=max_price)
    assert status == 400 and headers["Content-Type"].startswith(PROBLEM)
    assert [e["field"] for e in problem["errors"]] == ["max_price"] and message in problem["detail"]


async def test_an_ended_offer_takes_no_bid(world, db):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner, lifetime=3600)
    await db.execute(
        "UPDATE offers SET status = 'ended', end_reason = 'no_bids', ended_at = now() WHERE id = $1",
        uuid.UUID(offer["id"]),
    )
    status, problem, _ = await bid(world, alice, offer["id"], 20)
    assert status == 409 and "ended" in problem["detail"]


async def test_a_bid_reads_pending_right_after_its_202_to_its_bidder_and_seller_only(world):
    owner, alice, eve = await accounts(world.auth, *("owner", "alice", "eve"))
    offer = await new_offer(world, owner)
    status, placed, headers = await bid(world, alice, offer["id"], 12, max_price=15)
    assert status == 202
    # No worker runs here: the bid stays pending, and its Location answers at once.
    for who, max_price in ((alice, 15), (owner, None)):
        resp = await world.bids.get(headers["Location"], headers=who.headers)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {**placed, "max_price": max_price}
    resp = await world.bids.get(headers["Location"], headers=eve.headers)
    assert resp.status == 404 and resp.content_type == PROBLEM
    # A pending bid is not judged yet: it cannot be accepted, and the offer's list leaves it out.
    resp = await world.offers.put(f"/v1/bid/{placed['id']}", headers=owner.headers)
    assert resp.status == 409 and "pending" in (await resp.json())["detail"]
    resp = await world.bids.get(f"/v1/offer/{offer['id']}/bids", headers=owner.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"


async def test_a_failed_pending_record_does_not_fail_the_202(world, db, tap):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    await tap.drain(settle=1)
    # The database refuses this bidder's pending rows (a real error, raised by PostgreSQL itself).
    trigger = f"refuse_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.username = '{alice.username}' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
        f" RETURN NEW; END $$;"
        f" CREATE TRIGGER {trigger} BEFORE INSERT ON bids FOR EACH ROW EXECUTE FUNCTION {trigger}()"
    )
    try:
        status, placed, _ = await bid(world, alice, offer["id"], 12)
    finally:
        await db.execute(f"DROP TRIGGER {trigger} ON bids; DROP FUNCTION {trigger}()")
    assert status == 202 and placed["status"] == "pending"
    assert str(placed["id"]) in {str(b.bid_id) for b in await tap.drain()}  # queued all the same


async def test_my_bids_lists_only_mine_newest_first_with_paging_under_both_names(world):
    owner, alice, bob = await accounts(world.auth, *("owner", "alice", "bob"))
    first, second = await new_offer(world, owner), await new_offer(world, owner)
    placed = []
    for offer, price in ((first, 11), (second, 12), (first, 13)):
        status, body, _ = await bid(world, alice, offer["id"], price)
        assert status == 202
        placed.append(body)
    assert (await bid(world, bob, first["id"], 14))[0] == 202
    newest_first = [b["id"] for b in reversed(placed)]
    for base in ("/v1/bid", "/v1/bids"):
        resp = await world.bids.get(f"{base}?size=100", headers=alice.headers)
        assert resp.status == 200 and resp.headers["X-Total-Count"] == "3"
        assert [b["id"] for b in await resp.json()] == newest_first
    pages = []
    for page in range(3):
        resp = await world.bids.get(f"/v1/bid?size=2&page={page}", headers=alice.headers)
        pages.append([b["id"] for b in await resp.json()])
    assert pages == [newest_first[:2], newest_first[2:], []]
    # Through the gateway as well.
    resp = await world.gateway.get("/v1/bids?size=1", headers=alice.headers)
    assert resp.status == 200 and [b["id"] for b in await resp.json()] == newest_first[:1]
    assert resp.headers["X-Total-Count"] == "3"
    resp = await world.bids.get("/v1/bid?size=0", headers=alice.headers)
    assert resp.status == 400 and "size" in {e["field"] for e in (await resp.json())["errors"]}


async def test_a_replayed_key_answers_the_first_bid_and_queues_nothing_new(world, tap):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    await tap.drain(settle=1)
    key = uuid.uuid4().hex
    s1, first, h1 = await bid(world, alice, offer["id"], 12, key, max_price=20)
    s2, again, h2 = await bid(world, alice, offer["id"], 12, key, max_price=20)
    assert s1 == s2 == 202 and again == first
    assert h2["Idempotent-Replayed"] == "true" and h2["Location"] == h1["Location"]
    assert [str(b.bid_id) for b in await tap.drain()] == [first["id"]]


@pytest.mark.parametrize(
    "changed", [{"bid_price": 13}, {"max_price": 21}, {"max_price": None}, {"offer_id": "other"}]
)
async def test_the_same_key_with_another_bid_is_a_422(world, tap, changed):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer, other = await new_offer(world, owner), await new_offer(world, owner)
    key = uuid.uuid4().hex
    assert (await bid(world, alice, offer["id"], 12, key, max_price=20))[0] == 202
    await tap.drain(settle=1)
    body = {"offer_id": offer["id"], "bid_price": 12, "max_price": 20, **changed}
    if body["offer_id"] == "other":
        body["offer_id"] = other["id"]
    resp = await world.bids.post("/v1/bid", json=body, headers={**alice.headers, "Idempotency-Key": key})
    assert resp.status == 422 and resp.content_type == PROBLEM
    assert "Idempotency-Key" in {e["field"] for e in (await resp.json())["errors"]}
    assert await tap.drain() == []


async def age_past_retention(db: asyncpg.Connection, user: Account, key: str) -> None:
    await db.execute(
        "UPDATE bid_requests SET created_at = now() - make_interval(secs => $2 + 1)"
        " WHERE user_id = $1 AND idempotency_key = $3",
        uuid.UUID(user.user_id),
        KEY_RETENTION_SECONDS,
        key,
    )


async def test_a_key_past_its_retention_is_free_again_and_is_deleted(world, db, settings):
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    old, kept = uuid.uuid4().hex, uuid.uuid4().hex
    _, first, _ = await bid(world, alice, offer["id"], 12, old)
    _, recent, _ = await bid(world, alice, offer["id"], 12, kept)
    await age_past_retention(db, alice, old)
    # Expired: the key names a new bid (another body is no 422 now).
    status, fresh, headers = await bid(world, alice, offer["id"], 15, old)
    assert status == 202 and fresh["id"] != first["id"] and "Idempotent-Replayed" not in headers
    status, again, _ = await bid(world, alice, offer["id"], 15, old)
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
    assert (await bid(world, alice, offer["id"], 12, kept))[1] == recent


async def test_the_pending_record_keeps_a_final_row_the_worker_wrote_first(world, db, settings):
    # A worker faster than intake's record: intake's ON CONFLICT DO NOTHING leaves the final row be.
    owner, alice = await account(world.auth, "owner"), await account(world.auth, "alice")
    offer = await new_offer(world, owner)
    placed = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer["id"]),
        user_id=uuid.UUID(alice.user_id),
        username=alice.username,
        bid_price=Decimal(12),
        placed_at=datetime.now(timezone.utc),
    )
    await db.execute(
        "INSERT INTO bids (id, offer_id, user_id, username, bid_price, placed_at, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'leading')",
        placed.bid_id,
        placed.offer_id,
        placed.user_id,
        placed.username,
        placed.bid_price,
        placed.placed_at,
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        await record_pending(pool, placed)
    finally:
        await pool.close()
    assert await db.fetchval("SELECT status FROM bids WHERE id = $1", placed.bid_id) == "leading"
