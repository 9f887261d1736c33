"""The apply-and-retry transaction: one batch of one shard, committed whole, retried until it commits.

Transient failures (the database or the network away) are retried in place, never requeued, so the
shard's order holds. A failure the database will repeat on every try (a value it refuses) is
permanent: the batch is split so the one message at fault is dead-lettered and the rest applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import asyncpg

from auction_shared import rules
from auction_shared.events import BidPlaced, CloseOffer
from auction_shared.outbox import OutboxRelay

from . import announcing, store

log = logging.getLogger("bid_worker")

# SQLSTATE classes the database repeats on every try of the same statement: 22 data exception
# (numeric overflow, bad value), 23 integrity constraint (check, foreign key, not null).
PERMANENT = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)

ShardMessage = BidPlaced | CloseOffer


@dataclass
class Applied:
    """What a committed batch did, for the acks, the dead letters and the audit file."""

    locked_at: float = 0.0
    bids: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (offer, bid) in order
    # Index in the batch of each message that can never be applied, and why.
    dead: dict[int, str] = field(default_factory=dict)
    ended: int = 0


class Applier:
    """Applies batches of decoded shard messages (bids and closes) in one transaction each.

    `grace`: how long after `ends_at` (by the database clock) a close may end an offer: longer than
    intake's publish delay, so every bid received before the end is in the queue ahead of the close.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        relay: OutboxRelay,
        worker_id: str,
        grace: timedelta,
        stopping: Callable[[], bool],
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._worker_id = worker_id
        self._grace = grace
        self._stopping = stopping
        self.retries = 0

    async def apply_until_done(self, shard: int, work: Sequence[ShardMessage]) -> Applied:
        """Commit `work` (in order), retrying transient failures; split on a permanent one."""
        try:
            return await self._retry(shard, lambda: self._apply(work))
        except PERMANENT as exc:
            if len(work) == 1:
                return Applied(dead={0: f"the database refuses it: {exc.sqlstate} {exc}"})
            log.warning(
                "shard %d: a batch of %d failed for good (%r); applying one by one", shard, len(work), exc
            )
        result = Applied()
        for index, item in enumerate(work):
            single = await self.apply_until_done(shard, [item])
            result.locked_at = result.locked_at or single.locked_at
            result.bids += single.bids
            result.ended += single.ended
            if single.dead:
                result.dead[index] = single.dead[0]
        return result

    async def _retry(self, shard: int, attempt: Callable[[], Awaitable[Applied]]) -> Applied:
        delay = 0.1
        while True:
            try:
                return await attempt()
            except PERMANENT:
                raise
            except TRANSIENT as exc:
                if self._stopping():
                    raise  # not acked: the broker gives these messages to the next worker
                self.retries += 1
                log.warning("shard %d: applying failed (%r); retrying in %.1fs", shard, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)

    async def _apply(self, work: Sequence[ShardMessage]) -> Applied:
        result = Applied()
        async with self._pool.acquire() as conn, conn.transaction():
            offers, now = await store.lock_offers(conn, sorted({w.offer_id for w in work}))
            result.locked_at = time.time()
            # Checked under the offer locks: a bid applied by another worker is seen here.
            done = await store.already_applied(conn, [w.bid_id for w in work if isinstance(w, BidPlaced)])
            by_offer: dict[uuid.UUID, list[ShardMessage]] = defaultdict(list)
            for index, item in enumerate(work):
                if isinstance(item, BidPlaced):
                    if item.bid_id in done:
                        continue  # a redelivered copy
                    done.add(item.bid_id)
                locked = offers.get(item.offer_id)
                if locked is None:
                    result.dead[index] = f"unknown offer {item.offer_id}"
                elif isinstance(item, BidPlaced) and item.user_id == locked.seller_id:
                    result.dead[index] = "a bid on the bidder's own offer"
                else:
                    by_offer[item.offer_id].append(item)
            bidders = sorted(
                {(w.offer_id, w.user_id) for ws in by_offer.values() for w in ws if isinstance(w, BidPlaced)}
            )
            standing = await store.standing_bids(conn, bidders)
            outcomes: list[rules.Outcome] = []
            for offer_id, items in by_offer.items():
                mine = {user: bid for (offer, user), bid in standing.items() if offer == offer_id}
                auction = replace(offers[offer_id].auction, standing=mine)
                outcomes.append(rules.apply(auction, items, now, self._grace))
            judged = [j for o in outcomes for j in o.judged]
            final = {bid_id: status for o in outcomes for bid_id, status in o.statuses.items()}
            new_bids = await store.record_bids(
                conn, [(bid, final[bid.bid_id], reason) for bid, _, reason in judged], self._worker_id
            )
            fresh = {bid.bid_id for bid, _, _ in judged}
            earlier = await store.set_statuses(conn, {b: s for b, s in final.items() if b not in fresh})
            after = [replace(o.auction, standing={}) for o in outcomes]
            offer_rows = await store.update_offers(conn, [a for a in after if a != offers[a.id].auction])
            await announcing.announce(conn, self._relay, outcomes, offer_rows, [*new_bids, *earlier])
        result.bids = [(bid.offer_id, bid.bid_id) for bid, _, _ in judged]
        result.ended = sum(o.ended for o in outcomes)
        self._relay.wake()
        return result
