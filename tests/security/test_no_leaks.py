"""Whatever breaks inside, an answer never carries a stack trace, SQL or a driver's message.

Errors are forced for real: the services run against a database of their own whose tables and columns
have been renamed or dropped, so every query fails inside asyncpg the way a bug or a bad migration would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import asyncpg
import pytest
from aiohttp import web

from auction_shared.config import Settings
from auction_shared.migrate import create_database, migrate
from auction_shared.tokens import issue_token
from auction_shared.web import base_app
from tests.support.cleanup import drop_database
from tests.support.inprocess import World, running_world

# What must never reach a client.
LEAKS = (
    "Traceback",
    'File "',
    "asyncpg",
    "relation",
    "SELECT",
    "INSERT",
    "UPDATE",
    "FROM",
    "_gone",
    "does not exist",
    "two failures",
    "password_hash",
    "line ",
)
INTERNAL = {
    "type": "about:blank",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "internal error",
}


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {text!r}"


@pytest.fixture
async def broken_world(settings: Settings) -> AsyncIterator[tuple[World, str]]:
    """Every service on a database whose offers and bids tables and users' password column are gone."""
    broken = replace(settings, database_url=f"{settings.database_url}_broken_{uuid.uuid4().hex[:6]}")
    await create_database(broken.database_url)
    try:
        await migrate(broken.database_url)
        conn = await asyncpg.connect(broken.database_url)
        try:
            for table in ("offers", "bids", "bid_requests"):
                await conn.execute(f"ALTER TABLE {table} RENAME TO {table}_gone")
            # Users stay (so a token's user exists and requests reach their handlers), but signup
            # and login lose the column they need.
            await conn.execute("ALTER TABLE users DROP COLUMN password_hash")
            user_id = uuid.uuid4()
            await conn.execute("INSERT INTO users (id, username) VALUES ($1, 'someone')", user_id)
        finally:
            await conn.close()
        token = issue_token(settings.jwt_secret, user_id, "someone", 600)
        async with running_world(broken) as world:
            yield world, token
    finally:
        await drop_database(broken.database_url)


async def test_a_failing_query_is_a_plain_500_problem_on_every_route(broken_world) -> None:
    world, token = broken_world
    auth = {"Authorization": f"Bearer {token}"}
    some = str(uuid.uuid4())
    calls = [
        ("POST", "/v1/signup", {"json": {"username": "leaky_user", "password": "secret"}}),
        ("POST", "/v1/login", {"json": {"username": "leaky_user", "password": "secret"}}),
        ("GET", "/v1/offer", {"headers": auth}),
        ("POST", "/v1/offer", {"headers": auth, "json": {"title": "t", "bid_price": 5}}),
        ("GET", f"/v1/offer/{some}", {"headers": auth}),
        ("GET", f"/v1/offer/{some}/bids", {"headers": auth}),
        ("POST", "/v1/bid", {"headers": auth, "json": {"offer_id": some, "bid_price": 5}}),
        ("GET", f"/v1/bid/{some}", {"headers": auth}),
        ("PUT", f"/v1/bid/{some}", {"headers": auth}),
    ]
    # Straight at each service too: each answers the routes it owns (the rest are 404/405 there).
    owned = {"gateway": len(calls), "auth": 2, "offers": 4, "bids": 3}
    for target, expected in owned.items():
        client = world.gateway if target == "gateway" else world.services[target]
        failed = 0
        for method, path, kwargs in calls:
            resp = await client.request(method, path, **kwargs)
            if resp.status in (404, 405) and target != "gateway":
                continue
            failed += 1
            text = await resp.text()
            assert resp.status == 500, (target, method, path, text)
            assert resp.content_type == "application/problem+json"
            assert await resp.json() == INTERNAL
            assert_no_leak(text)
            assert_no_leak(str(dict(resp.headers)))
        assert failed == expected, target


@pytest.fixture
def exploding_app(settings: Settings) -> Iterator[web.Application]:
    """A service app whose handlers fail in the ways code can: driver errors, bugs, odd exceptions."""
    app = base_app(settings)

    async def driver_error(request: web.Request) -> web.Response:
        raise asyncpg.exceptions.UndefinedColumnError('column "password_hash" does not exist in SELECT')

    async def bug(request: web.Request) -> web.Response:
        raise KeyError("SELECT secret FROM users")

    async def exotic(request: web.Request) -> web.Response:
        raise ExceptionGroup("two failures", [ValueError("x"), TypeError("INSERT")])

    for path, handler in (("/driver", driver_error), ("/bug", bug), ("/exotic", exotic)):
        app.router.add_get(path, handler)
    yield app


async def test_unexpected_exceptions_answer_a_bare_500(aiohttp_client, exploding_app) -> None:
    client = await aiohttp_client(exploding_app)
    for path in ("/driver", "/bug", "/exotic"):
        resp = await client.get(path)
        assert resp.status == 500
        text = await resp.text()
        assert await resp.json() == INTERNAL, text
        assert_no_leak(text)
