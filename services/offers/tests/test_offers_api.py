"""Create, list and read offers through the real offers app on a real Postgres."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from tests.support.inprocess import account

# One offers app (and auth app for accounts) for the whole module: each test makes its own users.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


@pytest.fixture
def offers_client(world):
    return world.offers


@pytest.fixture
def make_user(world):
    return lambda prefix="user": account(world.auth, prefix)


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


async def create(client, user, **body):
    body.setdefault("title", "Swiss Shales")
    body.setdefault("bid_price", 12.34)
    resp = await client.post("/v1/offer", json=body, headers=user.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_answers_201_with_the_whole_offer(offers_client, make_user):
    owner = await make_user("owner")
    before = datetime.now(timezone.utc)
    resp = await offers_client.post(
        "/v1/offer",
        json={"bid_price": 12.34, "title": "Swiss Shales", "lifetime": 0, "photo_url": ""},
        headers=owner.headers,
    )
    assert resp.status == 201
    assert resp.content_type == "application/json"
    offer = await resp.json()
    uuid.UUID(offer["id"])
    assert {k: offer[k] for k in offer if k not in ("id", "go_live", "created_at")} == {
        "title": "Swiss Shales",
        "photo_url": "",
        "bid_price": 12.34,
        "lifetime": 0,
        "ends_at": None,
        "created_by": owner.username,
        "sold": False,
        "highest_bid_id": None,
        "highest_bidder": None,
        "bid_count": 0,
        "status": "live",
        "end_reason": None,
        "starting_price": 12.34,
        "min_next_bid": 12.34,
        "min_increment": None,
        "reserve_met": None,
        "soft_close_seconds": 0,
        "hard_ends_at": None,
        "version": 1,
    }
    after = datetime.now(timezone.utc)
    # go_live absent means now.
    assert before - timedelta(seconds=1) <= parse_time(offer["go_live"]) <= after + timedelta(seconds=1)
    assert before - timedelta(seconds=1) <= parse_time(offer["created_at"]) <= after + timedelta(seconds=1)


async def test_get_returns_what_create_returned_under_both_spellings(offers_client, make_user):
    owner = await make_user("owner")
    offer = await create(offers_client, owner, title="Read me")
    for base in ("/v1/offer", "/v1/offers"):
        resp = await offers_client.get(f"{base}/{offer['id']}", headers=owner.headers)
        assert resp.status == 200
        assert await resp.json() == offer


async def test_plural_alias_creates_too(offers_client, make_user):
    owner = await make_user("owner")
    resp = await offers_client.post(
        "/v1/offers", json={"title": "Plural", "bid_price": 3}, headers=owner.headers
    )
    assert resp.status == 201
    offer = await resp.json()
    got = await offers_client.get(f"/v1/offer/{offer['id']}", headers=owner.headers)
    assert (await got.json())["title"] == "Plural"


async def test_any_user_can_read_any_offer(offers_client, make_user):
    owner, reader = await make_user("owner"), await make_user("reader")
    offer = await create(offers_client, owner)
    resp = await offers_client.get(f"/v1/offer/{offer['id']}", headers=reader.headers)
    assert resp.status == 200 and (await resp.json())["created_by"] == owner.username


@pytest.mark.parametrize("offer_id", [str(uuid.uuid4()), "not-a-uuid", "12345", "%20"])
async def test_unknown_or_malformed_id_is_a_404_problem(offers_client, make_user, offer_id):
    user = await make_user()
    resp = await offers_client.get(f"/v1/offer/{offer_id}", headers=user.headers)
    assert resp.status == 404
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["status"] == 404 and problem["title"] == "Not Found"


async def test_money_is_stored_exactly(offers_client, make_user, settings):
    owner = await make_user("owner")
    prices = {0.1: Decimal("0.10"), 999999999999.99: Decimal("999999999999.99"), 7: Decimal("7.00")}
    conn = await asyncpg.connect(settings.database_url)
    try:
        for sent, stored in prices.items():
            offer = await create(offers_client, owner, bid_price=sent)
            assert offer["bid_price"] == sent
            row = await conn.fetchrow(
                "SELECT start_price, bid_price FROM offers WHERE id = $1", uuid.UUID(offer["id"])
            )
            assert row["start_price"] == row["bid_price"] == stored
    finally:
        await conn.close()


async def test_future_go_live_is_kept_and_lifetime_sets_ends_at(offers_client, make_user):
    owner = await make_user("owner")
    go_live = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    offer = await create(offers_client, owner, go_live=go_live.isoformat(), lifetime=3600)
    assert parse_time(offer["go_live"]) == go_live
    assert parse_time(offer["ends_at"]) == go_live + timedelta(seconds=3600)
    assert offer["lifetime"] == 3600


async def test_go_live_in_another_offset_is_the_same_instant(offers_client, make_user):
    owner = await make_user("owner")
    at_utc = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    in_baku = at_utc.astimezone(timezone(timedelta(hours=4)))
    offer = await create(offers_client, owner, go_live=in_baku.isoformat())
    assert parse_time(offer["go_live"]) == at_utc
    assert offer["go_live"].endswith("+00:00")


async def test_past_go_live_means_now_and_lifetime_counts_from_now(offers_client, make_user):
    owner = await make_user("owner")
    before = datetime.now(timezone.utc)
    offer = await create(offers_client, owner, go_live="2001-01-01T00:00:00Z", lifetime=60)
    go_live = parse_time(offer["go_live"])
    assert go_live >= before - timedelta(seconds=1)
    assert parse_time(offer["ends_at"]) == go_live + timedelta(seconds=60)


async def test_lifetime_zero_never_ends(offers_client, make_user):
    owner = await make_user("owner")
    go_live = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    offer = await create(offers_client, owner, go_live=go_live, lifetime=0)
    assert offer["ends_at"] is None and offer["lifetime"] == 0


@pytest.mark.parametrize("url", ["", "http://example.com/a.png", "https://cdn.example.com/x?y=1#z"])
async def test_photo_url_may_be_empty_or_http(offers_client, make_user, url):
    owner = await make_user("owner")
    offer = await create(offers_client, owner, photo_url=url)
    assert offer["photo_url"] == url


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "x"}, "bid_price"),
        ({"bid_price": 1}, "title"),
        ({"bid_price": 1, "title": ""}, "title"),
        ({"bid_price": 1, "title": " \t "}, "title"),
        ({"bid_price": 1, "title": "x" * 201}, "title"),
        ({"bid_price": 0, "title": "x"}, "bid_price"),
        ({"bid_price": 1.001, "title": "x"}, "bid_price"),
        ({"bid_price": "1", "title": "x"}, "bid_price"),
        ({"bid_price": 1, "title": "x", "lifetime": -1}, "lifetime"),
        ({"bid_price": 1, "title": "x", "lifetime": 10 * 365 * 24 * 3600 + 1}, "lifetime"),
        ({"bid_price": 1, "title": "x", "photo_url": "ftp://example.com/a"}, "photo_url"),
        ({"bid_price": 1, "title": "x", "photo_url": "example.com/a.png"}, "photo_url"),
        ({"bid_price": 1, "title": "x", "photo_url": "http://"}, "photo_url"),
        ({"bid_price": 1, "title": "x", "go_live": "2030-01-01T10:00:00"}, "go_live"),
        ({"bid_price": 1, "title": "x", "go_live": "2030-01-01"}, "go_live"),
        ({"bid_price": 1, "title": "x", "go_live": 1900000000}, "go_live"),
        ({"bid_price": 1, "title": "x", "go_live": "2100-01-01T00:00:00+00:00"}, "go_live"),
    ],
)
async def test_bad_offer_is_a_400_problem_naming_the_field(offers_client, make_user, body, field):
    owner = await make_user("owner")
    resp = await offers_client.post("/v1/offer", json=body, headers=owner.headers)
    assert resp.status == 400, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["status"] == 400 and problem["type"] == "about:blank"
    assert field in {e["field"] for e in problem["errors"]}
    assert field in problem["detail"]


async def test_unknown_body_fields_are_ignored(offers_client, make_user):
    owner = await make_user("owner")
    offer = await create(offers_client, owner, sold=True, bid_count=99, created_by="someone else", id="x")
    assert offer["sold"] is False and offer["bid_count"] == 0 and offer["created_by"] == owner.username
    assert offer["id"] != "x"


async def test_wrong_content_type_is_415(offers_client, make_user):
    owner = await make_user("owner")
    resp = await offers_client.post(
        "/v1/offer",
        data='{"title": "x", "bid_price": 1}',
        headers={**owner.headers, "Content-Type": "text/plain"},
    )
    assert resp.status == 415 and resp.content_type == PROBLEM


async def test_list_answers_an_array_with_the_total_count(offers_client, make_user, settings):
    owner = await make_user("owner")
    mine = [await create(offers_client, owner, title=f"count {i}") for i in range(3)]
    resp = await offers_client.get("/v1/offer", headers=owner.headers)
    assert resp.status == 200
    offers = await resp.json()
    total = int(resp.headers["X-Total-Count"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert total == await conn.fetchval("SELECT count(*) FROM offers")
    finally:
        await conn.close()
    assert total >= len(mine)
    assert len(offers) == min(10, total)  # size defaults to 10
    resp = await offers_client.get("/v1/offers?size=2", headers=owner.headers)
    assert len(await resp.json()) == 2 and int(resp.headers["X-Total-Count"]) == total


async def test_list_sorts_by_each_key_in_both_directions(offers_client, make_user):
    owner = await make_user("owner")
    for price in (3.5, 700, 0.25):
        await create(offers_client, owner, bid_price=price, title=f"sort {price}")
    keys = {"golive": "go_live", "bid_price": "bid_price", "created": "created_at"}
    for key, field in keys.items():
        for prefix, descending in (("", False), ("-", True)):
            resp = await offers_client.get(f"/v1/offer?size=100&sortKey={prefix}{key}", headers=owner.headers)
            assert resp.status == 200
            offers = await resp.json()
            values = [parse_time(o[field]) if field != "bid_price" else o[field] for o in offers]
            assert values == sorted(values, reverse=descending), key


async def test_lowercase_sortkey_is_accepted_too(offers_client, make_user):
    user = await make_user()
    resp = await offers_client.get("/v1/offer?sortkey=-bid_price&size=5", headers=user.headers)
    assert resp.status == 200
    prices = [o["bid_price"] for o in await resp.json()]
    assert prices == sorted(prices, reverse=True)


@pytest.mark.parametrize(
    "query, field",
    [
        ("sortKey=price", "sortKey"),
        ("sortKey=-", "sortKey"),
        ("size=0", "size"),
        ("size=101", "size"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("size=abc&page=x", "size"),
    ],
)
async def test_bad_list_query_is_a_400_problem(offers_client, make_user, query, field):
    user = await make_user()
    resp = await offers_client.get(f"/v1/offer?{query}", headers=user.headers)
    assert resp.status == 400 and resp.content_type == PROBLEM
    assert field in {e["field"] for e in (await resp.json())["errors"]}


async def test_a_page_past_the_end_is_empty_but_still_counts(offers_client, make_user):
    user = await make_user()
    await create(offers_client, user)
    resp = await offers_client.get("/v1/offer?page=1000000&size=100", headers=user.headers)
    assert resp.status == 200 and await resp.json() == []
    assert int(resp.headers["X-Total-Count"]) >= 1


async def test_health_names_postgres_and_rabbitmq(offers_client):
    resp = await offers_client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "dependencies": {"postgres": "up", "rabbitmq": "up"}}


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v1/offer"),
        ("GET", "/v1/offer"),
        ("GET", "/v1/offers/" + str(uuid.uuid4())),
        ("PUT", "/v1/bid/" + str(uuid.uuid4())),
    ],
)
async def test_the_service_itself_answers_401_without_a_token(offers_client, method, path):
    resp = await offers_client.request(method, path, json={"title": "x", "bid_price": 1})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.content_type == PROBLEM


async def test_unknown_route_is_a_404_problem(offers_client):
    resp = await offers_client.get("/v2/offer")
    assert resp.status == 404 and resp.content_type == PROBLEM
