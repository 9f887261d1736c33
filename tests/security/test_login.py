"""Logins: the same answer and the same bcrypt work for an unknown user and a wrong password, failed
attempts limited per username and per client address, and the bcrypt cost set by BCRYPT_ROUNDS."""

from __future__ import annotations

import uuid
from dataclasses import replace

import bcrypt
import pytest
from aiohttp.test_utils import TestClient

from auction_shared.config import ConfigError, Settings
from auction_shared.db import create_pool
from tests.support.inprocess import running_world

LIMIT = 3


@pytest.fixture
async def strict_auth(aiohttp_client, settings: Settings, fresh_login_attempts: None) -> TestClient:
    """The auth service allowing LIMIT failed logins a minute per username and per address."""
    from auth.app import create_app

    return await aiohttp_client(create_app(replace(settings, login_attempts_per_minute=LIMIT)))


def creds(username: str, password: str = "wrong-password") -> dict[str, str]:
    return {"username": username, "password": password}


async def signup(client: TestClient, prefix: str = "login") -> dict[str, str]:
    c = creds(f"{prefix}_{uuid.uuid4().hex[:10]}", "right-" + uuid.uuid4().hex[:6])
    resp = await client.post("/v1/signup", json=c)
    assert resp.status == 201, await resp.text()
    return c


async def test_unknown_user_and_wrong_password_get_the_same_401_after_one_bcrypt_check_each(
    auth_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Timing is not asserted (the machine is shared); the code path is: both failures run exactly
    # one real bcrypt check, against a hash of the same cost, before the same answer.
    checked: list[bytes] = []
    real_check = bcrypt.checkpw

    def counting_check(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_check(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_check)
    known = await signup(auth_client)
    answers = []
    for body in (creds(known["username"]), creds(f"nobody_{uuid.uuid4().hex[:10]}")):
        before = len(checked)
        resp = await auth_client.post("/v1/login", json=body)
        assert len(checked) == before + 1, body
        answers.append(
            (resp.status, resp.headers.get("WWW-Authenticate"), resp.content_type, await resp.json())
        )
    wrong_password, unknown_user = answers
    assert wrong_password == unknown_user
    assert wrong_password[0] == 401
    cost = [h.split(b"$")[2] for h in checked]
    assert cost[0] == cost[1], "the decoy hash must cost what a real one costs"


async def test_failed_logins_are_limited_per_username_with_429_and_retry_after(
    strict_auth: TestClient,
) -> None:
    known = await signup(strict_auth)
    for attempt in range(LIMIT):
        resp = await strict_auth.post(
            "/v1/login", json=creds(known["username"]), headers={"X-Forwarded-For": f"10.0.0.{attempt}"}
        )
        assert resp.status == 401
    # From yet another address, and even with the right password: the username is locked for now.
    resp = await strict_auth.post("/v1/login", json=known, headers={"X-Forwarded-For": "10.0.1.1"})
    assert resp.status == 429, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Other users are not affected.
    other = await signup(strict_auth)
    resp = await strict_auth.post("/v1/login", json=other, headers={"X-Forwarded-For": "10.0.1.2"})
    assert resp.status == 200


async def test_failed_logins_are_limited_per_client_address(strict_auth: TestClient) -> None:
    for _ in range(LIMIT):
        resp = await strict_auth.post(
            "/v1/login", json=creds(f"guess_{uuid.uuid4().hex[:8]}"), headers={"X-Forwarded-For": "192.0.2.7"}
        )
        assert resp.status == 401
    resp = await strict_auth.post(
        "/v1/login", json=creds(f"guess_{uuid.uuid4().hex[:8]}"), headers={"X-Forwarded-For": "192.0.2.7"}
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    resp = await strict_auth.post(
        "/v1/login", json=creds(f"guess_{uuid.uuid4().hex[:8]}"), headers={"X-Forwarded-For": "192.0.2.8"}
    )
    assert resp.status == 401  # another address still gets to try


async def test_through_the_gateway_a_forged_x_forwarded_for_does_not_escape_the_address_limit(
    settings: Settings, fresh_login_attempts: None
) -> None:
    # The gateway replaces X-Forwarded-For with the address it saw, so a client cannot pose as many.
    async with running_world(replace(settings, login_attempts_per_minute=LIMIT)) as world:
        statuses = []
        for i in range(LIMIT + 1):
            resp = await world.gateway.post(
                "/v1/login",
                json=creds(f"spray_{uuid.uuid4().hex[:8]}"),
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            statuses.append(resp.status)
        assert statuses == [401] * LIMIT + [429]
        assert "Retry-After" in resp.headers


def test_bcrypt_rounds_come_from_the_environment() -> None:
    assert Settings.from_env({"BCRYPT_ROUNDS": "11"}).bcrypt_rounds == 11
    assert Settings.from_env({}).bcrypt_rounds == 12
    with pytest.raises(ConfigError):
        Settings.from_env({"BCRYPT_ROUNDS": "3"})  # bcrypt's own minimum is 4


async def test_stored_hashes_and_the_decoy_use_the_configured_cost(
    aiohttp_client, settings: Settings
) -> None:
    from auth.app import create_app
    from auth.handlers import HASHER

    app = create_app(replace(settings, bcrypt_rounds=5))
    client = await aiohttp_client(app)
    known = await signup(client, "cost")
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        stored = await pool.fetchval("SELECT password_hash FROM users WHERE username = $1", known["username"])
    finally:
        await pool.close()
    assert stored.startswith("$2b$05$")
    assert app[HASHER]._decoy.startswith(b"$2b$05$")
    assert (await client.post("/v1/login", json=known)).status == 200
