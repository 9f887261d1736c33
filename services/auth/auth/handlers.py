"""Handlers of the auth service: parse, call the store, answer."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, StringConstraints

from auction_shared.client_address import client_address
from auction_shared.db import DB_POOL
from auction_shared.health import database_answers, health_handler
from auction_shared.jsonio import json_response
from auction_shared.problems import Problem, unauthorized
from auction_shared.tokens import issue_token
from auction_shared.validation import StrictModel, parse_body
from auction_shared.web import SETTINGS

from . import store
from .passwords import Busy, PasswordHasher
from .ratelimit import LoginThrottle

HASHER = web.AppKey("hasher", PasswordHasher)
THROTTLE = web.AppKey("throttle", LoginThrottle)

# The gateway is the auth service's only caller (in Kubernetes its NetworkPolicy says so): one hop.
GATEWAY_HOPS = 1


def _password_bytes(value: str) -> str:
    # bcrypt reads at most 72 bytes; a longer password would be silently cut.
    if not 4 <= len(value.encode()) <= 72:
        raise ValueError("must be 4 to 72 bytes long")
    return value


Username = Annotated[str, StringConstraints(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, AfterValidator(_password_bytes)]


class Credentials(StrictModel):
    username: Username
    password: Password


def _taken(username: str) -> Problem:
    return Problem(409, f"username {username!r} is taken")


async def signup(request: web.Request) -> web.Response:
    body = await parse_body(request, Credentials)
    pool = request.app[DB_POOL]
    # A taken name costs a read, not a bcrypt hash.
    if await store.username_taken(pool, body.username):
        raise _taken(body.username)
    try:
        password_hash = await request.app[HASHER].hash(body.password)
    except Busy:
        raise Problem(503, "too many sign-ups at once, retry shortly", headers={"Retry-After": "1"}) from None
    user_id = await store.insert_user(pool, body.username, password_hash)
    if user_id is None:  # taken meanwhile
        raise _taken(body.username)
    return json_response({"id": str(user_id), "username": body.username}, status=201)


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Credentials)
    pool = request.app[DB_POOL]
    throttle = request.app[THROTTLE]
    user_key = f"user:{body.username.lower()}"
    address_key = f"addr:{client_address(request, GATEWAY_HOPS)}"
    wait = await throttle.attempt(pool, (user_key, address_key))
    if wait:
        raise Problem(429, "too many failed logins, try again later", headers={"Retry-After": str(wait)})
    user = await store.find_user(pool, body.username)
    ok = await request.app[HASHER].check(body.password, user["password_hash"] if user else None)
    if not ok or user is None:
        raise unauthorized("wrong username or password")
    await throttle.succeeded(pool, user_key, address_key)
    settings = request.app[SETTINGS]
    # The stored spelling, whatever case the login used: it is what `created_by` shows.
    token = issue_token(settings.jwt_secret, user["id"], user["username"], settings.jwt_ttl_seconds)
    return json_response({"token": token})


health = health_handler({"postgres": database_answers})
