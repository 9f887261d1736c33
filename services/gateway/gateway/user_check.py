"""Whether a WebSocket's user still exists: asked of the offers service, remembered briefly.

A token's signature proves only that auth issued it; a deleted user's token stays valid until it
expires. The gateway has no database, so it asks a service that has one: every service refuses (401)
a token whose user does not exist (auction_shared.known_users). The question is a GET of an offer id
that no offer has (the nil UUID): 404 says the user exists, 401 that it does not, at the cost of one
primary-key lookup. The answer is remembered for KNOWN_USER_TTL_SECONDS, so a socket's messages cost
nothing more than a dict lookup, and a deleted user is shut out within twice that time (the offers
service remembers its own answer as long).

When the offers service cannot answer, the user is taken to exist and nothing is remembered: the
token was checked, and an outage of offers must not close every socket of the replica.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from aiohttp import web

from auction_shared.problems import DependencyDown

from .proxy import OFFERS, fetch

PROBE_PATH = f"/v1/offer/{uuid.UUID(int=0)}"
# Bounded the simple way: when full, forget everything and ask again.
MAX_REMEMBERED = 100_000


class UserCheck:
    """Per-replica memory of which user ids exist, filled by asking the offers service."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[uuid.UUID, tuple[float, bool]] = {}

    async def exists(self, app: web.Application, user_id: uuid.UUID, token: str) -> bool:
        now = self._clock()
        hit = self._answers.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            status, _ = await fetch(app, OFFERS, PROBE_PATH, token)
        except DependencyDown:
            return True
        if status not in (200, 401, 404):  # offers is in trouble: it did not answer the question
            return True
        found = status != 401
        if len(self._answers) >= MAX_REMEMBERED:
            self._answers.clear()
        self._answers[user_id] = (now + self._ttl, found)
        return found


USERS = web.AppKey("ws_user_check", UserCheck)
