"""The apply-and-retry transaction: one batch of one shard, committed whole, retried until it commits.

Transient failures (the database or the network away) are retried in place, never requeued, so the
shard's order holds. A failure the database will repeat on every try (a value it refuses) is
permanent: the batch is split so the one message at fault is dead-lettered and the rest applied.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import NamedTuple

import asyncpg

from auction_shared import rules
from auction_shared.events import BidPlaced, CloseOffer
from auction_shared.outages import DATABASE_REFUSED, DATABASE_REFUSES_THE_VALUES
from auction_shared.outbox import OutboxRelay
from auction_shared.retry import Backoff, retry

from . import announcing, observed, store

log = logging.getLogger("bid_worker")

ShardMessage = BidPlaced | CloseOffer


class Refused(Exception):
    """The database refused the batch in a way it will repeat on every try."""

    def __init__(self, cause: asyncpg.PostgresError) -> None:
        super().__init__(f"the database refuses it: {cause.sqlstate} {cause}")


class Decision(NamedTuple):
    """A new bid as judged: its final status in the batch, and why it was rejected."""

    bid: BidPlaced
    status: str
    reason: rules.Rejection | None


@dataclass
class Applied:
    """What a committed batch did, for the acks, the dead letters and the audit file."""

    locked_at: float = 0.0
    decisions: list[Decision] = field(default_factory=list)  # in the order applied
    # Index in the batch of each message that can never be applied: (kind, why).
    dead: dict[int, tuple[str, str]] = field(default_factory=dict)
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
            return await self._retry(shard, work)
        except Refused as exc:
            if len(work) == 1:
                return Applied(dead={0: ("refused", str(exc))})
            log.warning(
                "shard %d: a batch of %d failed for good (%r); applying one by one", shard, len(work), exc
            )
        result = Applied()
        for index, item in enumerate(work):
            single = await self.apply_until_done(shard, [item])
            result.locked_at = result.locked_at or single.locked_at
            result.decisions += single.decisions
            result.ended += single.ended
            if single.dead:
                result.dead[index] = single.dead[0]
        return result

    async def _retry(self, shard: int, work: Sequence[ShardMessage]) -> Applied:
        """Retry the transaction until PostgreSQL takes it: never requeue, never reorder."""

        async def attempt() -> Applied:
            try:
                return await self._apply(work)
            except DATABASE_REFUSES_THE_VALUES as exc:
                raise Refused(exc) from exc  # not retried

        def waiting(exc: BaseException, delay: float) -> None:
            self.retries += 1
            log.warning(
                "shard %d: applying %d messages failed (%r); retrying in %.1fs", shard, len(work), exc, delay
            )

        # Stopping: not acked, so the broker gives these messages to the next worker.
        return await retry(
            attempt, on=DATABASE_REFUSED, backoff=Backoff(0.1, 3.0), give_up=self._stopping, waiting=waiting
        )

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
                    result.dead[index] = ("unknown_offer", f"unknown offer {item.offer_id}")
                elif isinstance(item, BidPlaced) and item.user_id == locked.seller_id:
                    result.dead[index] = ("own_offer", "a bid on the bidder's own offer")
                else:
                    by_offer[item.offer_id].append(item)
            # A plain read (no lock is taken), so in any order.
            bidders = {
                (w.offer_id, w.user_id) for ws in by_offer.values() for w in ws if isinstance(w, BidPlaced)
            }
            standing: dict[uuid.UUID, dict[uuid.UUID, uuid.UUID]] = defaultdict(dict)
            for (offer_id, user_id), bid_id in (await store.standing_bids(conn, list(bidders))).items():
                standing[offer_id][user_id] = bid_id
            outcomes: list[rules.Outcome] = []
            for offer_id, items in by_offer.items():
                auction = replace(offers[offer_id].auction, standing=standing.get(offer_id, {}))
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
        result.decisions = [Decision(bid, final[bid.bid_id], reason) for bid, _, reason in judged]
        result.ended = sum(o.ended for o in outcomes)
        observed.ends_fired(
            now - o.auction.ends_at
            for o in outcomes
            if o.ended and offers[o.auction.id].auction.status is rules.Status.LIVE and o.auction.ends_at
        )
        self._relay.wake()
        return result
