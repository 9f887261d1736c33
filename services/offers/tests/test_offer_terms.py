"""An offer's auction terms at creation, and the status / created_by filters of the list."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from tests.support.inprocess import account, new_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


async def listed(world, user, query: str) -> tuple[list[dict], int]:
    resp = await world.offers.get(f"/v1/offer?{query}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json(), int(resp.headers["X-Total-Count"])


async def test_the_terms_are_kept_and_hard_ends_at_is_the_first_end_plus_the_extension(world):
    seller = await account(world.auth, "seller")
    offer = await new_offer(
        world,
        seller,
        bid_price=10,
        lifetime=600,
        reserve_price=25.5,
        min_increment=0.75,
        soft_close_seconds=120,
        max_extension_seconds=900,
    )
    ends_at = datetime.fromisoformat(offer["ends_at"])
    assert datetime.fromisoformat(offer["hard_ends_at"]) == ends_at + timedelta(seconds=900)
    assert offer["min_increment"] == 0.75 and offer["soft_close_seconds"] == 120
    assert offer["reserve_met"] is False and offer["reserve_price"] == 25.5
    assert offer["starting_price"] == 10 and offer["min_next_bid"] == 10 and offer["status"] == "live"


async def test_without_a_soft_close_the_hard_end_is_the_end_and_without_a_lifetime_there_is_none(world):
    seller = await account(world.auth, "seller")
    hard = await new_offer(world, seller, lifetime=60, max_extension_seconds=900)
    assert hard["hard_ends_at"] == hard["ends_at"] is not None
    open_ended = await new_offer(world, seller, lifetime=0)
    assert open_ended["hard_ends_at"] is None and open_ended["ends_at"] is None


async def test_max_extension_defaults_to_an_hour(world, settings):
    seller = await account(world.auth, "seller")
    offer = await new_offer(world, seller, lifetime=60, soft_close_seconds=30)
    ends_at = datetime.fromisoformat(offer["ends_at"])
    assert datetime.fromisoformat(offer["hard_ends_at"]) == ends_at + timedelta(hours=1)
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT max_extension_seconds FROM offers WHERE id = $1", uuid.UUID(offer["id"])
        )
    finally:
        await conn.close()
    assert stored == 3600


async def test_the_reserve_shows_only_in_the_sellers_own_answers(world):
    seller, other = await account(world.auth, "seller"), await account(world.auth, "other")
    offer = await new_offer(world, seller, bid_price=5, reserve_price=5)
    assert offer["reserve_price"] == 5 and offer["reserve_met"] is False
    path = f"/v1/offer/{offer['id']}"
    mine = await (await world.offers.get(path, headers=seller.headers)).json()
    theirs = await (await world.offers.get(path, headers=other.headers)).json()
    assert mine["reserve_price"] == 5
    assert "reserve_price" not in theirs and theirs["reserve_met"] is False
    query = f"created_by={seller.username}"
    assert [o.get("reserve_price") for o in (await listed(world, seller, query))[0]] == [5]
    assert ["reserve_price" in o for o in (await listed(world, other, query))[0]] == [False]


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"reserve_price": 9.99}, "reserve_price"),
        ({"reserve_price": 10**12}, "reserve_price"),
        ({"reserve_price": 0}, "reserve_price"),
        ({"reserve_price": 10.001}, "reserve_price"),
        ({"reserve_price": "20"}, "reserve_price"),
        ({"min_increment": 0}, "min_increment"),
        ({"min_increment": -1}, "min_increment"),
        ({"min_increment": 0.005}, "min_increment"),
        ({"min_increment": 10**12}, "min_increment"),
        ({"min_increment": True}, "min_increment"),
        ({"soft_close_seconds": -1, "lifetime": 60}, "soft_close_seconds"),
        ({"soft_close_seconds": 3601, "lifetime": 60}, "soft_close_seconds"),
        ({"soft_close_seconds": 30}, "soft_close_seconds"),
        ({"soft_close_seconds": 30, "lifetime": 0}, "soft_close_seconds"),
        ({"soft_close_seconds": 1.5, "lifetime": 60}, "soft_close_seconds"),
        ({"max_extension_seconds": -1}, "max_extension_seconds"),
        ({"max_extension_seconds": 86401}, "max_extension_seconds"),
        ({"max_extension_seconds": "60"}, "max_extension_seconds"),
    ],
)
async def test_a_bad_term_is_a_400_problem_naming_the_field(world, extra, field):
    seller = await account(world.auth, "seller")
    resp = await world.offers.post(
        "/v1/offer", json={"title": "bad terms", "bid_price": 10, **extra}, headers=seller.headers
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == [field] and field in problem["detail"]


# Each term at the edge of what it may be.
AT_THE_BOUNDS = {
    "bid_price": 10,
    "lifetime": 1,
    "reserve_price": 999999999999.99,
    "min_increment": 0.01,
    "soft_close_seconds": 3600,
    "max_extension_seconds": 86400,
}


async def test_the_bounds_themselves_are_accepted(world):
    seller = await account(world.auth, "seller")
    offer = await new_offer(world, seller, **AT_THE_BOUNDS)
    assert offer["soft_close_seconds"] == 3600 and offer["min_increment"] == 0.01
    zero = await new_offer(world, seller, lifetime=60, soft_close_seconds=60, max_extension_seconds=0)
    assert zero["hard_ends_at"] == zero["ends_at"]


async def set_states(settings, sql_by_id: dict[str, str]) -> None:
    """Put offers in states no public route reaches in a moment (ended, sold)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        for offer_id, sql in sql_by_id.items():
            await conn.execute(f"UPDATE offers SET {sql} WHERE id = $1", uuid.UUID(offer_id))
    finally:
        await conn.close()


async def test_the_list_filters_by_status_and_seller_combined_with_paging_and_sorting(world, settings):
    seller, other = await account(world.auth, "seller"), await account(world.auth, "other")
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    live = [await new_offer(world, seller, bid_price=p) for p in (3, 1, 2)]
    scheduled = await new_offer(world, seller, go_live=later)
    ended = await new_offer(world, seller)
    sold = await new_offer(world, seller)
    theirs = await new_offer(world, other)
    await set_states(
        settings,
        {
            ended["id"]: "status = 'ended', end_reason = 'no_bids', ended_at = now()",
            sold["id"]: "status = 'sold', sold = true, end_reason = 'accepted', ended_at = now()",
        },
    )
    mine = f"created_by={seller.username}"
    offers, total = await listed(world, seller, mine)
    assert total == 6 and {o["id"] for o in offers} == {o["id"] for o in (*live, scheduled, ended, sold)}
    expected = {"scheduled": [scheduled], "ended": [ended], "sold": [sold]}
    for status, wanted in expected.items():
        offers, total = await listed(world, seller, f"{mine}&status={status}")
        assert [o["id"] for o in offers] == [o["id"] for o in wanted] and total == 1, status
        assert {o["status"] for o in offers} == {status}
    offers, total = await listed(world, other, f"{mine}&status=live&sortKey=-bid_price&size=2&page=0")
    assert total == 3 and [o["bid_price"] for o in offers] == [3, 2]
    offers, total = await listed(world, other, f"{mine}&status=live&sortKey=-bid_price&size=2&page=1")
    assert total == 3 and [o["bid_price"] for o in offers] == [1]
    offers, _ = await listed(world, seller, f"created_by={other.username}&status=live")
    assert [o["id"] for o in offers] == [theirs["id"]]
    offers, _ = await listed(world, seller, f"created_by={other.username.upper()}&status=live")
    assert [o["id"] for o in offers] == [theirs["id"]]  # names match in any case
    assert await listed(world, seller, "created_by=nobody_has_this_name") == ([], 0)
    # status alone: every offer listed has it.
    offers, total = await listed(world, seller, "status=sold&size=100")
    assert total >= 1 and {o["status"] for o in offers} == {"sold"}


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=open", "status"),
        ("status=", "status"),
        ("status=LIVE", "status"),
        ("created_by=", "created_by"),
        ("created_by=" + "x" * 33, "created_by"),
        ("created_by=a%00b", "created_by"),
    ],
)
async def test_a_bad_filter_is_a_400_problem_naming_it(world, query, field):
    user = await account(world.auth)
    resp = await world.offers.get(f"/v1/offer?{query}", headers=user.headers)
    assert resp.status == 400 and resp.content_type == PROBLEM
    assert field in {e["field"] for e in (await resp.json())["errors"]}
