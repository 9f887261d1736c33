"""Bid intake under the auction rules: proxy bids, closed offers, the pending record, own bids."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import asyncpg
import pytest

from auction_shared.events import BidPlaced
from bids.store import record_pending
from tests.support.inprocess import accounts, new_offer, place_bid

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


async def test_a_proxy_bid_carries_its_max_price_to_the_queue_and_only_to_its_bidder(world, bid_tap):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    status, placed, _ = await place_bid(world, alice, offer["id"], 10.5, max_price=40.25)
    assert status == 202 and placed["max_price"] == 40.25 and placed["status"] == "pending"
    queued = (await bid_tap.bids_until(placed["id"]))[-1]
    assert queued.max_price == Decimal("40.25") and queued.bid_price == Decimal("10.50")
    mine = await (await world.bids.get(f"/v1/bid/{placed['id']}", headers=alice.headers)).json()
    sellers = await (await world.bids.get(f"/v1/bid/{placed['id']}", headers=owner.headers)).json()
    assert mine["max_price"] == 40.25 and sellers["max_price"] is None
    status, straight, _ = await place_bid(world, alice, offer["id"], 11)
    assert status == 202 and straight["max_price"] is None
    assert (await bid_tap.bids_until(straight["id"]))[-1].max_price is None


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
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    status, problem, headers = await place_bid(world, alice, offer["id"], 10, max_price=max_price)
    assert status == 400 and headers["Content-Type"].startswith(PROBLEM)
    assert [e["field"] for e in problem["errors"]] == ["max_price"] and message in problem["detail"]


async def test_an_ended_offer_takes_no_bid(world, db):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner, lifetime=3600)
    await db.execute(
        "UPDATE offers SET status = 'ended', end_reason = 'no_bids', ended_at = now() WHERE id = $1",
        uuid.UUID(offer["id"]),
    )
    status, problem, _ = await place_bid(world, alice, offer["id"], 20)
    assert status == 409 and "ended" in problem["detail"]


async def test_a_bid_reads_pending_right_after_its_202_to_its_bidder_and_seller_only(world):
    owner, alice, eve = await accounts(world.auth, "owner", "alice", "eve")
    offer = await new_offer(world, owner)
    status, placed, headers = await place_bid(world, alice, offer["id"], 12, max_price=15)
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


async def test_a_failed_pending_record_does_not_fail_the_202(world, db, bid_tap):
    owner, alice = await accounts(world.auth, "owner", "alice")
    offer = await new_offer(world, owner)
    # The database refuses this bidder's pending rows (a real error, raised by PostgreSQL itself).
    trigger = f"refuse_{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.username = '{alice.username}' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
        f" RETURN NEW; END $$;"
        f" CREATE TRIGGER {trigger} BEFORE INSERT ON bids FOR EACH ROW EXECUTE FUNCTION {trigger}()"
    )
    try:
        status, placed, _ = await place_bid(world, alice, offer["id"], 12)
    finally:
        await db.execute(f"DROP TRIGGER {trigger} ON bids; DROP FUNCTION {trigger}()")
    assert status == 202 and placed["status"] == "pending"
    assert str((await bid_tap.bids_until(placed["id"]))[-1].bid_id) == placed["id"]  # queued all the same
    assert not await db.fetchval("SELECT true FROM bids WHERE id = $1", uuid.UUID(placed["id"]))


async def test_my_bids_lists_only_mine_newest_first_with_paging_under_both_names(world):
    owner, alice, bob = await accounts(world.auth, "owner", "alice", "bob")
    first, second = await new_offer(world, owner), await new_offer(world, owner)
    placed = []
    for offer, price in ((first, 11), (second, 12), (first, 13)):
        status, body, _ = await place_bid(world, alice, offer["id"], price)
        assert status == 202
        placed.append(body)
    assert (await place_bid(world, bob, first["id"], 14))[0] == 202
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


async def test_the_pending_record_keeps_a_final_row_the_worker_wrote_first(world, db, settings):
    # A worker faster than intake's record: intake's ON CONFLICT DO NOTHING leaves the final row be.
    owner, alice = await accounts(world.auth, "owner", "alice")
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
        await record_pending(pool, [placed])
    finally:
        await pool.close()
    assert await db.fetchval("SELECT status FROM bids WHERE id = $1", placed.bid_id) == "leading"
