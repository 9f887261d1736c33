"""Sign-up and login through the real auth app and a real Postgres."""

from __future__ import annotations

import uuid

import jwt
import pytest

from auction_shared.tokens import verify_token


def name() -> str:
    return "u_" + uuid.uuid4().hex[:10]


async def test_signup_then_login_issues_a_token_for_that_user(auth_client, settings):
    username = name()
    resp = await auth_client.post("/v1/signup", json={"username": username, "password": "baku"})
    assert resp.status == 201
    created = await resp.json()
    assert created["username"] == username
    uuid.UUID(created["id"])

    resp = await auth_client.post("/v1/login", json={"username": username, "password": "baku"})
    assert resp.status == 200
    token = (await resp.json())["token"]
    claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == created["id"] and claims["username"] == username
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_seconds
    assert verify_token(settings.jwt_secret, token).username == username


async def test_password_is_stored_only_as_a_bcrypt_hash(auth_client, settings):
    import asyncpg

    username = name()
    await auth_client.post("/v1/signup", json={"username": username, "password": "secret-pw"})
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE username = $1", username)
    finally:
        await conn.close()
    assert stored.startswith("$2b$") and "secret-pw" not in stored


async def test_taken_username_is_a_409_problem(auth_client):
    username = name()
    body = {"username": username, "password": "baku"}
    assert (await auth_client.post("/v1/signup", json=body)).status == 201
    resp = await auth_client.post("/v1/signup", json=body)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 409


async def test_unknown_user_and_wrong_password_get_the_same_401(auth_client):
    username = name()
    await auth_client.post("/v1/signup", json={"username": username, "password": "right"})
    wrong = await auth_client.post("/v1/login", json={"username": username, "password": "wrong"})
    unknown = await auth_client.post("/v1/login", json={"username": name(), "password": "right"})
    assert wrong.status == unknown.status == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert await wrong.json() == await unknown.json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "ab", "password": "baku"}, "username"),
        ({"username": "x" * 33, "password": "baku"}, "username"),
        ({"username": "has space", "password": "baku"}, "username"),
        ({"username": "ok_name", "password": "abc"}, "password"),
        ({"username": "ok_name", "password": "é" * 37}, "password"),  # 74 bytes
        ({"username": 123, "password": "baku"}, "username"),
        ({"username": "ok_name"}, "password"),
        ({"username": "ok_name", "password": None}, "password"),
    ],
)
async def test_bad_signup_bodies_are_400_naming_the_field(auth_client, body, field):
    resp = await auth_client.post("/v1/signup", json=body)
    assert resp.status == 400
    problem = await resp.json()
    assert problem["errors"][0]["field"] == field


async def test_failed_logins_are_throttled_per_username(aiohttp_client, settings, fresh_login_attempts):
    from dataclasses import replace

    from auth.app import create_app

    client = await aiohttp_client(create_app(replace(settings, login_attempts_per_minute=3)))
    username = name()
    await client.post("/v1/signup", json={"username": username, "password": "right"})
    for _ in range(3):
        assert (await client.post("/v1/login", json={"username": username, "password": "nope"})).status == 401
    resp = await client.post("/v1/login", json={"username": username, "password": "right"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "make_name, password",
    [
        (lambda hex_: hex_[:3], "baku"),  # the shortest name, the shortest password
        (lambda hex_: hex_[:32], "p" * 72),  # the longest name, 72 ASCII bytes
        (lambda hex_: "a.b-c_" + hex_[:6], "é" * 36),  # every allowed punctuation, 72 UTF-8 bytes
        (lambda hex_: "Mixed" + hex_[:6], "pass word with spaces"),
    ],
)
async def test_names_and_passwords_at_the_limits_are_accepted(auth_client, make_name, password):
    username = make_name(uuid.uuid4().hex)
    resp = await auth_client.post("/v1/signup", json={"username": username, "password": password})
    assert resp.status == 201, await resp.text()
    login = await auth_client.post("/v1/login", json={"username": username, "password": password})
    assert login.status == 200


async def test_a_body_that_is_not_json_is_415_or_400(auth_client):
    wrong_type = await auth_client.post(
        "/v1/signup",
        data="username=abc&password=baku",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status == 415 and wrong_type.content_type == "application/problem+json"
    not_json = await auth_client.post("/v1/login", data="{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400 and not_json.content_type == "application/problem+json"


async def test_health_names_postgres(auth_client):
    resp = await auth_client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "dependencies": {"postgres": "up"}}
