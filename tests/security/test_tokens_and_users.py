"""Who gets in: only tokens the auth service signed (HS256 pinned), of users that still exist.

The table of malformed, expired, unsigned and wrongly signed tokens on every route is
tests/test_tokens.py; this adds real RS256 tokens, public-key confusion, and deleted or unknown users.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auction_shared.config import Settings
from auction_shared.db import DB_POOL, create_pool
from auction_shared.jsonio import json_response
from auction_shared.known_users import KNOWN_USER_TTL_SECONDS, KnownUsers, known_user_middleware
from auction_shared.problems import Problem, problem_middleware
from auction_shared.tokens import issue_token, verify_token
from auction_shared.web import SETTINGS, identity


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": str(uuid.uuid4()), "username": "mallory", "iat": now, "exp": now + 600, **extra}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(part: bytes) -> str:
    return base64.urlsafe_b64encode(part).rstrip(b"=").decode()


def _hmac_token(header: dict[str, object], claims: dict[str, object], key: bytes) -> str:
    """What an attacker's own code makes: PyJWT itself refuses to HMAC with a PEM public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def forged_tokens(secret: str, key: rsa.RSAPrivateKey, sub: str | None = None) -> dict[str, str]:
    """Each token is wrong in one way only; `sub` names a real user, so the user is never the reason."""
    pem = _public_pem(key)

    def _for_user(**extra: object) -> dict[str, object]:
        return _claims(**({"sub": sub} if sub else {}), **extra)

    return {
        "RS256 signed with a real RSA key": jwt.encode(_for_user(), key, algorithm="RS256"),
        # Algorithm confusion: a verifier that took the alg from the header would check these with the
        # shared secret or with the RSA public key as an HMAC key.
        "RS256 header, HMAC with the secret": _hmac_token(
            {"alg": "RS256", "typ": "JWT"}, _for_user(), secret.encode()
        ),
        "HS256 keyed with the RSA public key": _hmac_token({"alg": "HS256", "typ": "JWT"}, _for_user(), pem),
        "RS256 header, HMAC with the RSA public key": _hmac_token(
            {"alg": "RS256", "typ": "JWT"}, _for_user(), pem
        ),
        "wrong key": jwt.encode(_for_user(), "k" * 64, algorithm="HS256"),
        "alg none": jwt.encode(_for_user(), None, algorithm="none"),
        "no exp": jwt.encode({k: v for k, v in _for_user().items() if k != "exp"}, secret, algorithm="HS256"),
        "expired": jwt.encode(
            _for_user(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), secret, algorithm="HS256"
        ),
        "issued in the future": jwt.encode(
            _for_user(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200), secret, algorithm="HS256"
        ),
    }


def test_forged_tokens_are_refused_and_a_real_one_accepted(
    settings: Settings, rsa_key: rsa.RSAPrivateKey
) -> None:
    for name, token in forged_tokens(settings.jwt_secret, rsa_key).items():
        with pytest.raises(Problem) as refused:
            verify_token(settings.jwt_secret, token)
        assert refused.value.status == 401, name
    user_id = uuid.uuid4()
    assert (
        verify_token(settings.jwt_secret, issue_token(settings.jwt_secret, user_id, "alice", 60)).user_id
        == user_id
    )


async def test_forged_tokens_get_401_from_each_service(
    offers_client: TestClient,
    bids_client: TestClient,
    settings: Settings,
    rsa_key: rsa.RSAPrivateKey,
    make_user,
) -> None:
    # A real user's id in every forged token, so only the signature or claims can be what is wrong.
    user = await make_user("victim")
    for name, token in forged_tokens(settings.jwt_secret, rsa_key, sub=user.user_id).items():
        for client, method, path in ((offers_client, "GET", "/v1/offer"), (bids_client, "POST", "/v1/bid")):
            resp = await client.request(method, path, json={}, headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 401, (name, path, await resp.text())
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_validly_signed_token_of_an_unknown_user_is_refused_by_every_service(
    offers_client: TestClient, bids_client: TestClient, settings: Settings, make_user
) -> None:
    ghost = {"Authorization": f"Bearer {issue_token(settings.jwt_secret, uuid.uuid4(), 'ghost', 600)}"}
    calls = [
        (offers_client, "GET", "/v1/offer"),
        (offers_client, "POST", "/v1/offer"),
        (offers_client, "PUT", f"/v1/bid/{uuid.uuid4()}"),
        (bids_client, "POST", "/v1/bid"),
        (bids_client, "GET", f"/v1/bid/{uuid.uuid4()}"),
        (bids_client, "GET", f"/v1/offer/{uuid.uuid4()}/bids"),
    ]
    for client, method, path in calls:
        resp = await client.request(method, path, json={"title": "x", "bid_price": 5}, headers=ghost)
        assert resp.status == 401, (method, path, await resp.text())
        assert resp.content_type == "application/problem+json"
        assert "does not exist" in (await resp.json())["detail"]
    # The control: the same requests with a real user's token are judged on their merits.
    user = await make_user("real")
    for client, method, path in calls:
        resp = await client.request(method, path, json={"title": "x", "bid_price": 5}, headers=user.headers)
        assert resp.status not in (401, 500), (method, path, await resp.text())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoDatabase:
    """Stands in for the pool where the test proves the answer came from the cache alone."""

    async def fetchval(self, *args: object) -> object:
        raise AssertionError("a cache hit went to the database")


class HeldDatabase:
    """Answers `exists` only when released, counting the queries asked meanwhile."""

    def __init__(self) -> None:
        self.queries = 0
        self.release = asyncio.Event()

    async def fetchval(self, *args: object) -> object:
        self.queries += 1
        await self.release.wait()
        return True


async def test_concurrent_checks_of_one_user_share_one_query_each_time_the_answer_expires() -> None:
    clock = Clock()
    users = KnownUsers(clock=clock)
    user_id = uuid.uuid4()
    for _ in range(2):  # the first answer, then again once it expired
        db = HeldDatabase()
        checks = [asyncio.ensure_future(users.exists(db, user_id)) for _ in range(50)]  # type: ignore[arg-type]
        await asyncio.sleep(0)
        checks[0].cancel()  # a caller that gives up leaves the shared query to the others
        db.release.set()
        answers = await asyncio.gather(*checks[1:])
        assert answers == [True] * 49 and db.queries == 1
        clock.now += KNOWN_USER_TTL_SECONDS + 1


async def test_a_deleted_users_token_is_refused_once_the_ttl_has_passed(
    aiohttp_client, settings: Settings, make_user
) -> None:
    clock = Clock()
    users = KnownUsers(clock=clock)
    app = web.Application(middlewares=[problem_middleware, known_user_middleware(settings.jwt_secret, users)])
    app[SETTINGS] = settings

    async def whoami(request: web.Request) -> web.Response:
        return json_response({"user": str(identity(request).user_id)})

    async def pool_ctx(app: web.Application):  # type: ignore[no-untyped-def]  # a cleanup context
        app[DB_POOL] = await create_pool(settings, min_size=1, max_size=2)
        yield
        await app[DB_POOL].close()

    app.router.add_get("/whoami", whoami)
    app.cleanup_ctx.append(pool_ctx)
    client = await aiohttp_client(app)
    user = await make_user("leaver")

    assert (await client.get("/whoami", headers=user.headers)).status == 200
    await app[DB_POOL].execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.user_id))
    # Within the TTL the process still trusts its answer: no query on the hot path.
    clock.now += KNOWN_USER_TTL_SECONDS - 1
    assert await users.exists(NoDatabase(), uuid.UUID(user.user_id))  # type: ignore[arg-type]  # fails if queried
    assert (await client.get("/whoami", headers=user.headers)).status == 200
    clock.now += 2
    resp = await client.get("/whoami", headers=user.headers)
    assert resp.status == 401, await resp.text()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_requests_without_a_token_or_with_a_bad_one_are_left_to_the_handler(
    aiohttp_client, settings: Settings
) -> None:
    # Public routes (signup, login, health) must not be refused for a stray or junk header.
    app = web.Application(
        middlewares=[problem_middleware, known_user_middleware(settings.jwt_secret, KnownUsers())]
    )
    app[DB_POOL] = NoDatabase()  # type: ignore[assignment]  # fails if queried

    async def public(request: web.Request) -> web.Response:
        return json_response({"ok": True})

    app.router.add_get("/public", public)
    client = await aiohttp_client(app)
    assert (await client.get("/public")).status == 200
    assert (await client.get("/public", headers={"Authorization": "Bearer junk"})).status == 200
