"""Tokens of deleted or unknown users are refused: each service checks the token's user id exists.

A signature only proves that the auth service issued the token, not that the account still exists.
Every service with a database pool asks `users` once per user id and remembers the answer for
KNOWN_USER_TTL_SECONDS in the process, so the hot path (a cache hit) never touches Postgres, and a
deleted user's tokens stop working everywhere within that time (the setting of the same name).
The gateway has no database: it relays the request, and the service behind it refuses; its
WebSocket asks the offers service (gateway/user_check.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware

from .db import DB_POOL
from .problems import Problem, unauthorized
from .shared_calls import SharedCalls
from .tokens import authenticate

# How long a process trusts its last answer about a user id (both "exists" and "does not").
KNOWN_USER_TTL_SECONDS = 30.0
# Bounded the simple way: when full, forget everything and ask again.
MAX_KNOWN_USERS = 100_000


class KnownUsers:
    """Per-process memory of which user ids exist."""

    def __init__(self, ttl: float = KNOWN_USER_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[uuid.UUID, tuple[float, bool]] = {}
        # When an answer expires under load, the requests of that user in flight share one query.
        self._asking: SharedCalls[uuid.UUID, bool] = SharedCalls()

    async def exists(self, pool: asyncpg.Pool, user_id: uuid.UUID) -> bool:
        now = self._clock()
        hit = self._entries.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found, _ = await self._asking.run(user_id, lambda: self._ask(pool, user_id, now))
        return found

    async def _ask(self, pool: asyncpg.Pool, user_id: uuid.UUID, now: float) -> bool:
        found = bool(await pool.fetchval("SELECT true FROM users WHERE id = $1", user_id))
        if len(self._entries) >= MAX_KNOWN_USERS:
            self._entries.clear()
        self._entries[user_id] = (now + self._ttl, found)
        return found


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def known_user_middleware(secret: str, users: KnownUsers | None = None) -> Middleware:
    """Refuse (401) a validly signed token whose user does not exist, before the handler runs.

    Requests without a token, or with a bad one, go on to the handler, which answers them as
    before (public routes ignore the header; protected ones refuse the token themselves).
    """
    users = users or KnownUsers()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        pool = request.app.get(DB_POOL)
        if pool is None or "Authorization" not in request.headers:
            return await handler(request)
        try:
            who = authenticate(request, secret)
        except Problem:
            return await handler(request)
        if not await users.exists(pool, who.user_id):
            raise unauthorized("the token's user does not exist")
        return await handler(request)

    return middleware
