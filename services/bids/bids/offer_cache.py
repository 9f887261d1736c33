"""A short-lived cache of what bid intake needs to know about an offer.

Intake checks are a courtesy (a quick 404/403/409); the worker re-checks sold and closed under a
row lock, so an answer up to TTL seconds old never lets a wrong bid win.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from auction_shared.shared_calls import SharedCalls

TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class OfferFacts:
    created_by_id: uuid.UUID
    status: str  # live, ended or sold
    ends_at: datetime | None


class OfferCache:
    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock
        self._entries: dict[uuid.UUID, tuple[float, OfferFacts | None]] = {}
        self._loading: SharedCalls[uuid.UUID, OfferFacts | None] = SharedCalls()

    async def get(self, offer_id: uuid.UUID) -> OfferFacts | None:
        now = self._clock()
        hit = self._entries.get(offer_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        facts, mine = await self._loading.run(offer_id, lambda: self._load(offer_id, now))
        # A query that began before the offer was committed says "unknown": ask again for ourselves.
        return facts if facts is not None or mine else await self._load(offer_id, now)

    async def _load(self, offer_id: uuid.UUID, now: float) -> OfferFacts | None:
        row = await self._pool.fetchrow(
            "SELECT created_by_id, status, ends_at FROM offers WHERE id = $1", offer_id
        )
        facts = OfferFacts(row["created_by_id"], row["status"], row["ends_at"]) if row else None
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        # Unknown ids are not cached: an offer created a moment ago must be biddable at once.
        if facts is not None:
            self._entries[offer_id] = (now + TTL_SECONDS, facts)
        return facts
