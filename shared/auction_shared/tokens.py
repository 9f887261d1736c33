"""JWT issue and verify: HS256 only, `exp` and `sub` required, the algorithm pinned."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt
from aiohttp import web

from .problems import Problem, unauthorized

ALGORITHM = "HS256"
# Clock skew tolerated between the service that issued a token and the one that checks it.
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class Identity:
    """Who is calling, as the token says."""

    user_id: uuid.UUID
    username: str
    expires_at: int


def issue_token(secret: str, user_id: uuid.UUID, username: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "username": username, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# Checking a signature costs more CPU than relaying the request it came with (PyJWT was ~20 % of the
# gateway's CPU under `make bench`), and a client sends the same token again and again: a token that
# passed every check is trusted again until it expires. Only valid tokens are kept, keyed with the
# secret, and the expiry is checked on every use.
_VERIFIED: dict[tuple[str, str], Identity] = {}
VERIFIED_TOKENS_KEPT = 10_000


def verify_token(secret: str, token: str) -> Identity:
    """Return the identity in a valid token, or raise a 401 problem saying what is wrong."""
    key = (secret, token)
    known = _VERIFIED.get(key)
    if known is not None:
        if time.time() < known.expires_at + LEEWAY_SECONDS:
            return known
        del _VERIFIED[key]
    identity = _check_token(secret, token)
    if len(_VERIFIED) >= VERIFIED_TOKENS_KEPT:
        _VERIFIED.clear()  # bounded the simple way: the next requests verify their tokens again
    _VERIFIED[key] = identity
    return identity


def _check_token(secret: str, token: str) -> Identity:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("token has expired") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized("token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise unauthorized("token is invalid") from None
    if claims["iat"] > time.time() + LEEWAY_SECONDS:
        raise unauthorized("token is issued in the future")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise unauthorized("token is invalid") from None
    username = claims.get("username")
    if not isinstance(username, str) or not username:
        raise unauthorized("token is invalid")
    return Identity(user_id=user_id, username=username, expires_at=int(claims["exp"]))


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("missing Authorization header")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def authenticate(request: web.Request, secret: str) -> Identity:
    return verify_token(secret, bearer_token(request))


__all__ = ["Identity", "Problem", "authenticate", "bearer_token", "issue_token", "verify_token"]
