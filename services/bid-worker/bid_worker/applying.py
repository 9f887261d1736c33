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
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from auction_shared.events import BidPlaced
from auction_shared.outbox import OutboxRelay
from auction_shared.shapes import offer_shape

from . import announcing, store
from .rules import Decision, OfferState, apply_bids

log = logging.getLogger("bid_worker")

# SQLSTATE classes the database repeats on every try of the same statement: 22 data exception
# (numeric overflow, bad value), 23 integrity constraint (check, foreign key, not null).
PERMANENT = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)


@dataclass
class Applied:
    """What a committed batch did, for the acks, the dead letters and the audit file."""

    locked_at: float = 0.0
    bids: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (offer, bid) in order
    # Index in the batch of each message that can never be applied, and why.
    dead: dict[int, str] = field(default_factory=dict)


class Applier:
    """Applies batches of decoded shard messages in one transaction each."""

    def __init__(
        self, pool: asyncpg.Pool, relay: OutboxRelay, worker_id: str, stopping: Callable[[], bool]
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._worker_id = worker_id
        self._stopping = stopping
        self.retries = 0

    async def apply_until_done(self, shard: int, work: Sequence[BidPlaced]) -> Applied:
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

    async def _apply(self, bids: Sequence[BidPlaced]) -> Applied:
        result = Applied()
        async with self._pool.acquire() as conn, conn.transaction():
            offers, now = await store.lock_offers(conn, sorted({b.offer_id for b in bids}))
            result.locked_at = time.time()
            # Checked under the offer locks: a bid applied by another worker is seen here.
            done = await store.already_applied(conn, [b.bid_id for b in bids])
            by_offer: dict[uuid.UUID, list[BidPlaced]] = defaultdict(list)
            seen = set(done)
            for index, bid in enumerate(bids):
                if bid.bid_id in seen:
                    continue
                seen.add(bid.bid_id)
                if bid.offer_id not in offers:
                    result.dead[index] = f"unknown offer {bid.offer_id}"
                    continue
                by_offer[bid.offer_id].append(bid)
            if not by_offer:
                return result
            decisions: list[Decision] = []
            outbid = []
            states: list[OfferState] = []
            changed_ids = set()
            for offer_id, offer_bids in by_offer.items():
                outcome = apply_bids(offers[offer_id], offer_bids, now)
                decisions.extend(outcome.decisions)
                outbid.extend(outcome.outbid)
                states.append(outcome.offer)
                if outcome.leader_changed:
                    changed_ids.add(offer_id)
            await store.mark_outbid(conn, outbid)
            await store.insert_bids(conn, decisions, self._worker_id)
            rows = await store.update_offers(conn, states)
            changed: list[dict[str, Any]] = [offer_shape(r) for r in rows if r["id"] in changed_ids]
            await announcing.offers_updated(conn, self._relay, changed)
        result.bids = [(d.bid.offer_id, d.bid.bid_id) for d in decisions]
        self._relay.wake()
        return result
