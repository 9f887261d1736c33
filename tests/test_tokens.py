"""Every bad token gets a 401 with WWW-Authenticate on every protected route, at the gateway and at
each service directly (services check the token again behind the gateway)."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.inprocess import World, account, running_world

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Routes anyone may call; /v1/stream authenticates inside its WebSocket messages instead (docs/API.md).
PUBLIC = {"/ping", "/health", "/index", "/v1/signup", "/v1/login", "/v1/stream"}


def protected_routes(setup_routes: Callable[[web.Application], None]) -> list[tuple[str, str]]:
    """(method, path template) of every route in a route table that needs a token."""
    app = web.Application()
    setup_routes(app)
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        # aiohttp adds a HEAD twin to every GET route; it runs the same handler.
        if route.method == "HEAD" or path in PUBLIC or not path.startswith("/v1/"):
            continue
        found.add((route.method, path))
    return sorted(found)


def _table() -> dict[str, list[tuple[str, str]]]:
    from bids.routes import setup_routes as bids_routes
    from gateway.routes import setup_routes as gateway_routes
    from offers.routes import setup_routes as offers_routes

    return {
        "gateway": protected_routes(gateway_routes),
        "offers": protected_routes(offers_routes),
        "bids": protected_routes(bids_routes),
    }


ROUTES = _table()
TARGETED = [(target, method, path) for target, routes in ROUTES.items() for method, path in routes]


async def test_the_route_table_covers_every_protected_route_of_the_api():
    # If the tables lost a route, the parametrised tests below would silently test less.
    expected = {
        ("POST", "/v1/offer"),
        ("GET", "/v1/offer"),
        ("GET", "/v1/offer/{offer_id}"),
        ("GET", "/v1/offer/{offer_id}/bids"),
        ("POST", "/v1/bid"),
        ("GET", "/v1/bid/{bid_id}"),
        ("PUT", "/v1/bid/{bid_id}"),
    }
    plural = {(m, p.replace("/v1/offer", "/v1/offers").replace("/v1/bid", "/v1/bids")) for m, p in expected}
    assert expected | plural <= set(ROUTES["gateway"])
    # Every protected public route is served, and checked again, by the service that owns it.
    assert set(ROUTES["gateway"]) == set(ROUTES["offers"]) | set(ROUTES["bids"])


def _b64(part: bytes) -> str:
    return base64.urlsafe_b64encode(part).rstrip(b"=").decode()


def _hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _hs256(secret: str) -> Callable[[bytes], bytes]:
    import hashlib
    import hmac

    return lambda data: hmac.new(secret.encode(), data, hashlib.sha256).digest()


@dataclass(frozen=True)
class Member:
    """A user who exists: each bad token below names them, so only its one defect can be refused."""

    user_id: str
    username: str


def claims(member: Member, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": member.user_id, "username": member.username, "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def authorization(kind: str, secret: str, member: Member) -> dict[str, str]:
    """The Authorization header of one kind of bad (or, for "valid", good) credential."""
    now = int(time.time())

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def signed(**overrides: Any) -> str:
        return jwt.encode(claims(member, **overrides), secret, algorithm="HS256")

    if kind == "missing":
        return {}
    if kind == "empty bearer":
        return {"Authorization": "Bearer "}
    if kind == "other scheme":
        return {"Authorization": "Basic bWFsbG9yeTpwYXNz"}
    if kind == "token without scheme":
        return {"Authorization": signed()}
    if kind == "malformed":
        return bearer("not-a-token")
    if kind == "garbage segments":
        return bearer("a.b.c")
    if kind == "expired":
        return bearer(signed(iat=now - 7200, exp=now - 3600))
    if kind == "wrong signature":
        return bearer(jwt.encode(claims(member), secrets.token_hex(32), algorithm="HS256"))
    if kind == "tampered payload":
        header, _, signature = signed().split(".")
        return bearer(f"{header}.{_b64(json.dumps(claims(member, username='admin')).encode())}.{signature}")
    if kind == "alg none":
        return bearer(_hand_made({"alg": "none", "typ": "JWT"}, claims(member), lambda _: b""))
    if kind == "alg none signed":
        return bearer(_hand_made({"alg": "none", "typ": "JWT"}, claims(member), _hs256(secret)))
    if kind == "no exp":
        return bearer(signed(exp=None))
    if kind == "no sub":
        return bearer(signed(sub=None))
    if kind == "sub not a uuid":
        return bearer(signed(sub="1 OR 1=1"))
    if kind == "issued in the future":
        return bearer(signed(iat=now + 3600, exp=now + 7200))
    if kind == "HS512":
        return bearer(jwt.encode(claims(member), secret, algorithm="HS512"))
    if kind == "RS256 header":
        # Algorithm confusion: an RS256 header over an HMAC made with the shared secret.
        return bearer(_hand_made({"alg": "RS256", "typ": "JWT"}, claims(member), _hs256(secret)))
    if kind == "valid":
        return bearer(signed())
    raise AssertionError(kind)


BAD_KINDS = [
    "missing",
    "empty bearer",
    "other scheme",
    "token without scheme",
    "malformed",
    "garbage segments",
    "expired",
    "wrong signature",
    "tampered payload",
    "alg none",
    "alg none signed",
    "no exp",
    "no sub",
    "sub not a uuid",
    "issued in the future",
    "HS512",
    "RS256 header",
]


def concrete(path: str) -> str:
    return path.replace("{offer_id}", str(uuid.uuid4())).replace("{bid_id}", str(uuid.uuid4()))


# A body valid for every route that takes one, so only the token can be what is wrong.
BODY = {"bid_price": 10, "offer_id": str(uuid.uuid4()), "title": "token probe"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def member(world: World) -> Member:
    user = await account(world.auth, "tok")
    unverified = jwt.decode(user.token, options={"verify_signature": False})
    return Member(unverified["sub"], user.username)


async def call(world: World, target: str, method: str, path: str, headers: dict[str, str]):
    client = world.gateway if target == "gateway" else world.services[target]
    body = BODY if method in ("POST", "PUT") else None
    return await client.request(method, concrete(path), json=body, headers=headers)


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("target, method, path", TARGETED)
async def test_bad_token_is_401_with_www_authenticate(world, settings, member, target, method, path, kind):
    resp = await call(world, target, method, path, authorization(kind, settings.jwt_secret, member))
    assert resp.status == 401, await resp.text()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized" and problem["detail"]


@pytest.mark.parametrize("target, method, path", TARGETED)
async def test_a_valid_token_passes_the_check_on_every_route(world, settings, member, target, method, path):
    # The control: the same request with a good token is judged on its merits, not refused.
    resp = await call(world, target, method, path, authorization("valid", settings.jwt_secret, member))
    assert resp.status != 401, await resp.text()
    assert resp.status < 500, await resp.text()


async def test_the_gateway_refuses_a_bad_token_without_asking_the_service(settings, member):
    # With the offers service unreachable, a 401 (not a 503) proves the gateway checked first.
    from tests.support.processes import free_port

    secret = settings.jwt_secret
    async with running_world(settings, offers_url=f"http://127.0.0.1:{free_port()}") as w:
        refused = await w.gateway.get("/v1/offer", headers=authorization("expired", secret, member))
        assert refused.status == 401
        passed = await w.gateway.get("/v1/offer", headers=authorization("valid", secret, member))
        assert passed.status == 503
