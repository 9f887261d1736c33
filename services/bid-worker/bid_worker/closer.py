"""The closer: finds offers whose end has passed and sends a close into each offer's shard.

It runs in every worker replica; it decides nothing. The offer's single active consumer applies the
close in the offer's queue order, after every bid queued before it, and only if the database clock
says `ends_at` + the grace has passed and the offer is still live; so a duplicate (from another
replica, a retry, a redelivery) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg

from auction_shared.broker import Publisher
from auction_shared.events import CloseOffer

log = logging.getLogger("bid_worker")

# At most this many closes per pass; the rest come on the next pass.
PASS_LIMIT = 5000
# A close this replica sent is sent again only after this long (its shard may be busy; the first
# copy is enough once it arrives).
RESEND_SECONDS = 5.0


class Closer:
    def __init__(self, pool: asyncpg.Pool, publisher: Publisher, grace: float, every: float) -> None:
        self._pool = pool
        self._publisher = publisher
        self._grace = grace
        self._every = every
        self._sent: dict[uuid.UUID, float] = {}
        self.sent = 0

    async def due(self) -> list[uuid.UUID]:
        """Live offers whose ends_at + grace has passed, by the database clock (offers_due_idx)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id FROM offers WHERE status = 'live' AND ends_at IS NOT NULL"
                " AND ends_at <= now() - make_interval(secs => $1) ORDER BY ends_at LIMIT $2",
                self._grace,
                PASS_LIMIT,
            )
        return [r["id"] for r in rows]

    async def pass_once(self) -> int:
        """Send a close for every due offer not sent lately; return how many were sent."""
        now = time.monotonic()
        due = await self.due()
        self._sent = {o: t for o, t in self._sent.items() if now - t < RESEND_SECONDS}
        todo = [o for o in due if o not in self._sent]
        # Sent together: the confirms pipeline on the publisher's channel.
        results = await asyncio.gather(
            *(self._publisher.send(CloseOffer(offer_id=o)) for o in todo), return_exceptions=True
        )
        for offer_id, result in zip(todo, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("close of offer %s not sent (%r); next pass tries again", offer_id, result)
            else:
                self._sent[offer_id] = now
                self.sent += 1
        return len(todo)

    async def run(self) -> None:
        while True:
            try:
                await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or broker is away: the next pass tries again
                log.warning("closer pass failed: %r", exc)
            await asyncio.sleep(self._every)
