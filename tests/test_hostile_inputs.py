"""A table of hostile requests through the gateway: each gets a 4xx problem+json, never a 5xx, and the
service behind it still answers a valid request afterwards."""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from tests.support.inprocess import World

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = "application/json"
TEN_K = "x" * 10_000
SOME_OFFER = str(uuid.uuid4())


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    error_field: str | None = None  # the field the problem's `errors` must name, when it is a body field
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        if self.path.startswith(("/v1/signup", "/v1/login")):
            return "auth"
        if self.path.startswith("/v1/bid") or self.path.endswith("/bids") or "/bids?" in self.path:
            return "bids"
        return "offers"


def signup(name: str, body: str | bytes, status: int = 400, field: str | None = None, **kw) -> Hostile:
    raw = body.encode() if isinstance(body, str) else body
    return Hostile(f"signup: {name}", "POST", "/v1/signup", raw, status, field, **kw)


def login(name: str, body: str, status: int = 400, field: str | None = None) -> Hostile:
    return Hostile(f"login: {name}", "POST", "/v1/login", body.encode(), status, field)


def offer(name: str, body: str | bytes, status: int = 400, field: str | None = None, **kw) -> Hostile:
    raw = body.encode() if isinstance(body, str) else body
    return Hostile(f"offer create: {name}", "POST", "/v1/offer", raw, status, field, **kw)


def listing(name: str, query: str, status: int = 400, field: str | None = None) -> Hostile:
    return Hostile(f"offer list: {name}", "GET", f"/v1/offer?{query}", None, status, field, None)


def read(name: str, path: str, status: int = 404) -> Hostile:
    return Hostile(f"read: {name}", "GET", path, None, status, None, None)


def bid(name: str, body: str | bytes, status: int = 400, field: str | None = None, **kw) -> Hostile:
    raw = body.encode() if isinstance(body, str) else body
    return Hostile(f"bid: {name}", "POST", "/v1/bid", raw, status, field, **kw)


def bid_on(price: str) -> str:
    return '{"offer_id": "%s", "bid_price": %s}' % (SOME_OFFER, price)


def offer_with(**fields: str) -> str:
    base = {"bid_price": "10", "title": '"hostile lot"'}
    base.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}"


TABLE = [
    # --- the body is not a JSON object -----------------------------------------------------
    signup("truncated JSON", '{"username": "abc",'),
    signup("empty body", ""),
    signup("array", '["abc", "pass"]'),
    signup("null", "null"),
    signup("bare string", '"abc"'),
    signup("bare number", "42"),
    signup("lone surrogate", '{"username": "\\ud800abc", "password": "pass"}'),
    signup("byte order mark", b'\xef\xbb\xbf{"username": "abcdef", "password": "pass"}'),
    signup("invalid UTF-8", b'{"username": "ab\xff\xfe", "password": "pass"}'),
    signup("nested 10000 deep", '{"a":' * 10_000 + "1" + "}" * 10_000),
    signup("single quotes", "{'username': 'abcdef', 'password': 'pass'}"),
    signup("trailing comma", '{"username": "abcdef", "password": "pass",}'),
    # --- wrong content type or encoding ----------------------------------------------------
    signup("text/plain", '{"username": "abcdef", "password": "pass"}', 415, content_type="text/plain"),
    signup("no content type", '{"username": "abcdef", "password": "pass"}', 415, content_type=None),
    signup(
        "form encoded", "username=abcdef&password=pass", 415, content_type="application/x-www-form-urlencoded"
    ),
    signup(
        "gzip header on plain bytes",
        '{"username": "abcdef", "password": "pass"}',
        headers={"Content-Encoding": "gzip"},
    ),
    signup(
        "gzip bomb above 64 KiB", gzip.compress(b" " * 200_000), 413, headers={"Content-Encoding": "gzip"}
    ),
    signup("body above 64 KiB", '{"username": "' + "a" * 70_000 + '", "password": "pass"}', 413),
    # --- wrong types and values ------------------------------------------------------------
    signup("username null", '{"username": null, "password": "pass"}', field="username"),
    signup("username number", '{"username": 12345, "password": "pass"}', field="username"),
    signup("username bool", '{"username": true, "password": "pass"}', field="username"),
    signup("username array", '{"username": ["abc"], "password": "pass"}', field="username"),
    signup("username object", '{"username": {"$ne": ""}, "password": "pass"}', field="username"),
    signup("username 10k chars", '{"username": "%s", "password": "pass"}' % TEN_K, field="username"),
    signup("username with NUL", '{"username": "abc\\u0000def", "password": "pass"}', field="username"),
    signup("username not ASCII", '{"username": "Äzerbaijan", "password": "pass"}', field="username"),
    signup("username SQL", '{"username": "x\' OR \'1\'=\'1", "password": "pass"}', field="username"),
    signup("password 10k chars", '{"username": "abcdef", "password": "%s"}' % TEN_K, field="password"),
    signup("password 73 bytes", '{"username": "abcdef", "password": "%s"}' % ("p" * 73), field="password"),
    signup("password with NUL", '{"username": "abcdef", "password": "pa\\u0000ss"}', field="password"),
    signup("password number", '{"username": "abcdef", "password": 12345}', field="password"),
    signup("missing password", '{"username": "abcdef"}', field="password"),
    login("missing username", '{"password": "pass"}', field="username"),
    login("password bool", '{"username": "abcdef", "password": false}', field="password"),
    login("array", '[{"username": "abcdef", "password": "pass"}]'),
    login("NaN", '{"username": "abcdef", "password": NaN}'),
    # --- money -----------------------------------------------------------------------------
    offer("price NaN", offer_with(bid_price="NaN")),
    offer("price Infinity", offer_with(bid_price="Infinity")),
    offer("price -Infinity", offer_with(bid_price="-Infinity")),
    offer("price 1e400 (overflows a double)", offer_with(bid_price="1e400")),
    offer("price 1e-400 (underflows to 0)", offer_with(bid_price="1e-400"), field="bid_price"),
    offer("price with 3 decimals", offer_with(bid_price="12.345"), field="bid_price"),
    offer("price 0.001", offer_with(bid_price="0.001"), field="bid_price"),
    offer("price 10^12", offer_with(bid_price="1000000000000"), field="bid_price"),
    offer("price 10^30", offer_with(bid_price="1" + "0" * 30), field="bid_price"),
    offer("price with 5000 digits", offer_with(bid_price="9" * 5000)),
    offer("price zero", offer_with(bid_price="0"), field="bid_price"),
    offer("price negative", offer_with(bid_price="-5"), field="bid_price"),
    offer("price as string", offer_with(bid_price='"12.34"'), field="bid_price"),
    offer("price as bool", offer_with(bid_price="true"), field="bid_price"),
    offer("price null", offer_with(bid_price="null"), field="bid_price"),
    offer("price array", offer_with(bid_price="[12]"), field="bid_price"),
    offer("price object", offer_with(bid_price='{"amount": 12}'), field="bid_price"),
    offer("price missing", '{"title": "hostile lot"}', field="bid_price"),
    # --- other offer fields ----------------------------------------------------------------
    offer("title 10k chars", offer_with(title=f'"{TEN_K}"'), field="title"),
    offer("title empty", offer_with(title='""'), field="title"),
    offer("title blank", offer_with(title='"   "'), field="title"),
    offer("title number", offer_with(title="42"), field="title"),
    offer("title with NUL", offer_with(title='"lot\\u0000"'), field="title"),
    offer("title missing", '{"bid_price": 10}', field="title"),
    offer("lifetime negative", offer_with(lifetime="-1"), field="lifetime"),
    offer("lifetime as string", offer_with(lifetime='"60"'), field="lifetime"),
    offer("lifetime fractional", offer_with(lifetime="1.5"), field="lifetime"),
    offer("lifetime as bool", offer_with(lifetime="true"), field="lifetime"),
    offer("lifetime 2^70", offer_with(lifetime=str(2**70)), field="lifetime"),
    offer("photo_url ftp", offer_with(photo_url='"ftp://example.com/a.png"'), field="photo_url"),
    offer("photo_url javascript", offer_with(photo_url='"javascript:alert(1)"'), field="photo_url"),
    offer("photo_url 10k chars", offer_with(photo_url=f'"http://example.com/{TEN_K}"'), field="photo_url"),
    offer("photo_url bad punycode", offer_with(photo_url='"http://xn--a.com/"'), field="photo_url"),
    offer("photo_url with NUL", offer_with(photo_url='"http://example.com/\\u0000"'), field="photo_url"),
    offer("go_live without offset", offer_with(go_live='"2030-01-01T10:00:00"'), field="go_live"),
    offer("go_live as number", offer_with(go_live="1900000000"), field="go_live"),
    offer("go_live digits as string", offer_with(go_live='"1900000000"'), field="go_live"),
    offer("go_live not a date", offer_with(go_live='"tomorrow"'), field="go_live"),
    offer("go_live 30 February", offer_with(go_live='"2030-02-30T10:00:00+00:00"'), field="go_live"),
    offer("go_live year 9999", offer_with(go_live='"9999-12-31T23:59:59-14:00"'), field="go_live"),
    offer("reserve below the price", offer_with(reserve_price="9.99"), field="reserve_price"),
    offer("reserve NaN", offer_with(reserve_price="NaN")),
    offer("reserve 10^12", offer_with(reserve_price="1000000000000"), field="reserve_price"),
    offer("reserve as string", offer_with(reserve_price='"20"'), field="reserve_price"),
    offer("min_increment zero", offer_with(min_increment="0"), field="min_increment"),
    offer("min_increment 1e400", offer_with(min_increment="1e400")),
    offer("soft close without a lifetime", offer_with(soft_close_seconds="60"), field="soft_close_seconds"),
    offer(
        "soft close 2^70",
        offer_with(lifetime="60", soft_close_seconds=str(2**70)),
        field="soft_close_seconds",
    ),
    offer(
        "extension a day and a second",
        offer_with(max_extension_seconds="86401"),
        field="max_extension_seconds",
    ),
    offer("extension null", offer_with(max_extension_seconds="null"), field="max_extension_seconds"),
    offer("body array", '[10, "hostile lot"]'),
    offer("wrong content type", offer_with(), 415, content_type="text/plain"),
    # --- list query ------------------------------------------------------------------------
    listing("unknown sortKey", "sortKey=price", field="sortKey"),
    listing("double minus", "sortKey=--golive", field="sortKey"),
    listing("SQL in sortKey", "sortKey=golive%3B%20DROP%20TABLE%20offers", field="sortKey"),
    listing("NUL in sortKey", "sortKey=%00", field="sortKey"),
    listing("undecodable sortKey", "sortKey=%ff%fe", field="sortKey"),
    listing("sortKey 5000 chars", "sortKey=" + "g" * 5000, field="sortKey"),
    listing("size zero", "size=0", field="size"),
    listing("size 101", "size=101", field="size"),
    listing("size negative", "size=-1", field="size"),
    listing("size word", "size=ten", field="size"),
    listing("size fractional", "size=1.5", field="size"),
    listing("size exponent", "size=1e2", field="size"),
    listing("size 30 digits", "size=" + "9" * 30, field="size"),
    listing("size as bool", "size=true", field="size"),
    listing("page negative", "page=-1", field="page"),
    listing("page not ASCII digits", "page=%D9%A3", field="page"),
    listing("page beyond a million", "page=1000001", field="page"),
    listing("page with plus", "page=%2B1", field="page"),
    listing("unknown status", "status=open", field="status"),
    listing("status with NUL", "status=live%00", field="status"),
    listing("status 5000 chars", "status=" + "l" * 5000, field="status"),
    listing("created_by empty", "created_by=", field="created_by"),
    listing("created_by with NUL", "created_by=ab%00c", field="created_by"),
    listing("created_by 5000 chars", "created_by=" + "a" * 5000, field="created_by"),
    Hostile("own bids: size zero", "GET", "/v1/bid?size=0", None, 400, "size", None),
    Hostile("own bids: page word", "GET", "/v1/bids?page=one", None, 400, "page", None),
    read("malformed offer id", "/v1/offer/not-a-uuid"),
    read("offer id with NUL", "/v1/offer/%00"),
    read("offer id 5000 chars", "/v1/offer/" + "a" * 5000),
    read("unknown offer id", f"/v1/offer/{uuid.uuid4()}"),
    read("bids of a malformed offer id", "/v1/offer/123/bids"),
    Hostile("bids list: size zero", "GET", "/v1/offer/{offer}/bids?size=0", None, 400, "size", None),
    Hostile("bids list: page word", "GET", "/v1/offer/{offer}/bids?page=one", None, 400, "page", None),
    read("malformed bid id", "/v1/bid/%27%20OR%201%3D1"),
    # --- bid body (the worker judges the price; intake only validates) --------------------
    bid("price NaN", bid_on("NaN")),
    bid("price Infinity", bid_on("Infinity")),
    bid("price with 3 decimals", bid_on("6832427.001"), field="bid_price"),
    bid("price 10^15", bid_on("1000000000000000"), field="bid_price"),
    bid("price negative", bid_on("-1"), field="bid_price"),
    bid("price as string", bid_on('"100"'), field="bid_price"),
    bid("price as bool", bid_on("false"), field="bid_price"),
    bid("price null", bid_on("null"), field="bid_price"),
    bid("price missing", '{"offer_id": "%s"}' % SOME_OFFER, field="bid_price"),
    bid("max_price below the price", bid_on("10")[:-1] + ', "max_price": 9.99}', field="max_price"),
    bid("max_price NaN", bid_on("10")[:-1] + ', "max_price": NaN}'),
    bid("max_price 10^12", bid_on("10")[:-1] + ', "max_price": 1000000000000}', field="max_price"),
    bid("max_price as string", bid_on("10")[:-1] + ', "max_price": "20"}', field="max_price"),
    bid("offer_id number", '{"offer_id": 17, "bid_price": 10}', field="offer_id"),
    bid("offer_id null", '{"offer_id": null, "bid_price": 10}', field="offer_id"),
    bid("offer_id array", '{"offer_id": ["%s"], "bid_price": 10}' % SOME_OFFER, field="offer_id"),
    bid("offer_id missing", '{"bid_price": 10}', field="offer_id"),
    bid("offer_id malformed", '{"offer_id": "nope", "bid_price": 10}', 404),
    bid("offer_id 10k chars", '{"offer_id": "%s", "bid_price": 10}' % TEN_K, 404),
    bid("offer_id with NUL", '{"offer_id": "\\u0000", "bid_price": 10}', field="offer_id"),
    bid("unknown offer", bid_on("10"), 404),
    bid("body array", "[]"),
    bid("body not JSON", "bid_price=10"),
    bid("wrong content type", bid_on("10"), 415, content_type="text/plain"),
    bid(
        "Idempotency-Key 300 chars",
        bid_on("10"),
        headers={"Idempotency-Key": "k" * 300},
        field="Idempotency-Key",
    ),
    bid(
        "Idempotency-Key with a tab",
        bid_on("10"),
        headers={"Idempotency-Key": "a\tb"},
        field="Idempotency-Key",
    ),
]


async def test_the_table_is_big_enough():
    assert len(TABLE) >= 30
    assert len({case.name for case in TABLE}) == len(TABLE)


@dataclass
class Arena:
    world: World
    headers: dict[str, str]
    credentials: dict[str, str]
    offer_id: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(world: World) -> Arena:
    credentials = {"username": f"hostile_{uuid.uuid4().hex[:10]}", "password": "pw-hostile"}
    assert (await world.gateway.post("/v1/signup", json=credentials)).status == 201
    token = (await (await world.gateway.post("/v1/login", json=credentials)).json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    resp = await world.gateway.post("/v1/offer", json={"title": "arena", "bid_price": 5}, headers=headers)
    assert resp.status == 201
    return Arena(world, headers, credentials, (await resp.json())["id"])


async def still_answers(arena: Arena, service: str) -> None:
    gateway = arena.world.gateway
    if service == "auth":
        resp = await gateway.post("/v1/login", json=arena.credentials)
    elif service == "offers":
        resp = await gateway.get("/v1/offer?size=1", headers=arena.headers)
    else:
        resp = await gateway.get(f"/v1/offer/{arena.offer_id}/bids", headers=arena.headers)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
async def test_hostile_input_gets_a_4xx_problem_and_the_service_survives(arena: Arena, case: Hostile):
    headers = dict(arena.headers)
    headers.update(case.headers)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    path = case.path.replace("{offer}", arena.offer_id)
    resp = await arena.world.gateway.request(
        case.method, path, data=case.body, headers=headers, skip_auto_headers=["Content-Type"]
    )
    text = await resp.text()
    assert resp.status == case.status, text
    assert resp.content_type == "application/problem+json", text
    problem = await resp.json(content_type=None)
    assert problem["status"] == resp.status and problem["title"] and problem["detail"]
    if case.error_field is not None:
        assert case.error_field in {e["field"] for e in problem.get("errors", [])}, problem
    await still_answers(arena, case.service)
