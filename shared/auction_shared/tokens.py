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


def verify_token(secret: str, token: str) -> Identity:
    """Return the identity in a valid token, or raise a 401 problem saying what is wrong."""
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
