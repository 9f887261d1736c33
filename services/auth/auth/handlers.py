"""Handlers of the auth service: parse, call the store, answer."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, StringConstraints

from auction_shared.db import DB_POOL
from auction_shared.health import database_answers, health_handler
from auction_shared.jsonio import json_response
from auction_shared.problems import Problem, unauthorized
from auction_shared.tokens import issue_token
from auction_shared.validation import StrictModel, parse_body
from auction_shared.web import SETTINGS

from . import store
from .passwords import PasswordHasher
from .ratelimit import LoginThrottle

HASHER = web.AppKey("hasher", PasswordHasher)
THROTTLE = web.AppKey("throttle", LoginThrottle)


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


async def signup(request: web.Request) -> web.Response:
    body = await parse_body(request, Credentials)
    password_hash = await request.app[HASHER].hash(body.password)
    user_id = await store.insert_user(request.app[DB_POOL], body.username, password_hash)
    if user_id is None:
        raise Problem(409, f"username {body.username!r} is taken")
    return json_response({"id": str(user_id), "username": body.username}, status=201)


def _client_address(request: web.Request) -> str:
    # The gateway is the only caller and sets X-Forwarded-For to the address it saw.
    forwarded = request.headers.get("X-Forwarded-For", "")
    return forwarded.split(",")[-1].strip() or (request.remote or "unknown")


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Credentials)
    throttle = request.app[THROTTLE]
    user_key, addr_key = f"user:{body.username}", f"addr:{_client_address(request)}"
    wait = throttle.retry_after(user_key, addr_key)
    if wait:
        raise Problem(429, "too many failed logins, try again later", headers={"Retry-After": str(wait)})
    user = await store.find_user(request.app[DB_POOL], body.username)
    ok = await request.app[HASHER].check(body.password, user["password_hash"] if user else None)
    if not ok or user is None:
        throttle.failed(user_key, addr_key)
        raise unauthorized("wrong username or password")
    throttle.succeeded(user_key)
    settings = request.app[SETTINGS]
    token = issue_token(settings.jwt_secret, user["id"], user["username"], settings.jwt_ttl_seconds)
    return json_response({"token": token})


health = health_handler({"postgres": database_answers})
