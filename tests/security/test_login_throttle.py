"""The login throttle under real concurrency: counted before the password check, shared by every auth
replica through PostgreSQL, keyed on the client address the trusted proxies saw, and never a lockout
that outlives its window."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from aiohttp.test_utils import make_mocked_request

from auction_shared.client_address import client_address
from auction_shared.config import Settings
from auction_shared.db import create_pool
from tests.support.inprocess import running_world

LIMIT = 5


async def test_fifty_concurrent_wrong_passwords_on_two_replicas_let_only_the_limit_reach_bcrypt(
    aiohttp_client, settings: Settings, fresh_login_attempts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth.app import create_app

    strict = replace(settings, login_attempts_per_minute=LIMIT)
    replicas = [await aiohttp_client(create_app(strict)) for _ in range(2)]
    username = f"target_{uuid.uuid4().hex[:10]}"
    assert (
        await replicas[0].post("/v1/signup", json={"username": username, "password": "right"})
    ).status == 201

    checked = 0
    lock = threading.Lock()
    real_check = bcrypt.checkpw

    def counting_check(password: bytes, hashed: bytes) -> bool:
        nonlocal checked
        with lock:
            checked += 1
        return real_check(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_check)
    # Fifty guesses at once, half on each replica, each from its own address: only the username
    # links them, so only a count shared by the replicas (and taken before the check) stops them.
    answers = await asyncio.gather(
        *(
            replicas[i % 2].post(
                "/v1/login",
                json={"username": username, "password": f"guess-{i}"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            for i in range(50)
        )
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [401] * LIMIT + [429] * (50 - LIMIT)
    assert checked == LIMIT, "every guess past the limit must be refused before bcrypt"
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in answers if r.status == 429)


async def test_a_lockout_ends_with_its_window_however_often_it_is_hit(settings: Settings) -> None:
    from auth.ratelimit import LoginThrottle

    now = datetime(2026, 1, 1, tzinfo=UTC)
    throttle = LoginThrottle(limit=2, window_seconds=60, clock=lambda: now)
    keys = (f"user:victim_{uuid.uuid4().hex[:8]}",)
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        assert [await throttle.attempt(pool, keys) for _ in range(2)] == [0, 0]
        assert await throttle.attempt(pool, keys) == 60
        # An attacker keeps trying all through the lockout: it does not last any longer for that.
        for second in range(1, 60):
            now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
            assert await throttle.attempt(pool, keys) == 60 - second
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=60)
        assert await throttle.attempt(pool, keys) == 0, "the lockout must end with its window"
        # Ended windows are deleted as the service goes.
        now += timedelta(seconds=61)
        await throttle.forget_ended(pool)
        assert not await pool.fetchval("SELECT count(*) FROM login_attempts WHERE key = $1", keys[0])
    finally:
        await pool.close()


async def test_a_right_password_is_not_held_against_the_address(
    aiohttp_client, settings: Settings, fresh_login_attempts: None
) -> None:
    # Many people behind one address (an office, a NAT) log in all day: only failures count.
    from auth.app import create_app

    client = await aiohttp_client(create_app(replace(settings, login_attempts_per_minute=LIMIT)))
    creds = {"username": f"office_{uuid.uuid4().hex[:10]}", "password": "right"}
    assert (await client.post("/v1/signup", json=creds)).status == 201
    for _ in range(LIMIT * 3):
        resp = await client.post("/v1/login", json=creds, headers={"X-Forwarded-For": "192.0.2.50"})
        assert resp.status == 200


async def test_behind_a_trusted_proxy_the_limit_follows_the_address_the_proxy_saw(
    settings: Settings, fresh_login_attempts: None
) -> None:
    strict = replace(settings, login_attempts_per_minute=LIMIT)
    async with running_world(strict, trusted_proxy_hops=1) as world:

        async def guess(forwarded: str) -> int:
            resp = await world.gateway.post(
                "/v1/login",
                json={"username": f"spray_{uuid.uuid4().hex[:8]}", "password": "wrong"},
                headers={"X-Forwarded-For": forwarded},
            )
            return resp.status

        # The client prepends a new forged address each time; the proxy's entry (the last) is the same.
        statuses = [await guess(f"10.9.9.{i}, 203.0.113.77") for i in range(LIMIT + 1)]
        assert statuses == [401] * LIMIT + [429]
        assert await guess("203.0.113.78") == 401  # another client behind the same proxy


@pytest.mark.parametrize(
    "forwarded, hops, expected",
    [
        (None, 0, "127.0.0.1"),
        ("6.6.6.6", 0, "127.0.0.1"),  # no proxy trusted: the header is the client's own word
        ("6.6.6.6, 203.0.113.1", 1, "203.0.113.1"),
        ("6.6.6.6, 203.0.113.1, 10.0.0.2", 2, "203.0.113.1"),
        ("203.0.113.1", 3, "203.0.113.1"),  # fewer entries than proxies: the outermost there is
        (None, 1, "127.0.0.1"),
        (" , ", 1, "127.0.0.1"),
    ],
)
def test_the_client_address_is_read_only_from_trusted_hops(
    forwarded: str | None, hops: int, expected: str
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("POST", "/v1/login", headers=headers).clone(remote="127.0.0.1")
    assert client_address(request, hops) == expected
