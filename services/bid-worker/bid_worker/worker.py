"""The consume loop: one channel and one ordered batch loop per shard queue, acks after commit."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import asyncpg
from aio_pika import Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from auction_shared import broker
from auction_shared.broker import Publisher, Topology
from auction_shared.config import Settings
from auction_shared.db import create_pool
from auction_shared.events import BidPlaced, MalformedEvent, OfferUpdated, decode
from auction_shared.outages import DATABASE_REFUSED
from auction_shared.retry import Backoff, retry
from auction_shared.shapes import offer_shape

from . import observed, store
from .rules import Decision, OfferState, apply_bids
from .settings import WorkerSettings
from .sharing import Roster, owner

log = logging.getLogger("bid_worker")

# How often workers announce themselves, and how often each checks whether to hand a shard on.
HEARTBEAT_SECONDS = 2.0
REBALANCE_SECONDS = 5.0


class Shard:
    """One shard queue: its own channel (delivery tags and acks are per channel) and inbox."""

    def __init__(self, index: int, queue_name: str) -> None:
        self.index = index
        self.queue_name = queue_name
        self.channel: AbstractChannel | None = None
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.current: asyncio.Future[None] | None = None
        # The offer.updated events of the last batch, still waiting for the broker's confirms.
        self.announcing: asyncio.Future[None] | None = None
        self.last_delivery = float("-inf")
        self.release_requested = False
        self._generation = 0

    async def subscribe(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        self._generation += 1
        generation = self._generation
        self.inbox = asyncio.Queue()
        self.channel = await connection.channel()
        await self.channel.set_qos(prefetch_count=prefetch)
        # declare_queue (passive), not get_queue: only queues the robust channel declared are
        # re-consumed after a reconnect; a get_queue consumer would be silently lost.
        queue = await self.channel.declare_queue(self.queue_name, passive=True)

        async def deliver(message: AbstractIncomingMessage) -> None:
            if generation == self._generation:
                self.last_delivery = time.monotonic()
                self.inbox.put_nowait(message)

        await queue.consume(deliver)

    async def release(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        """Hand the shard to the next worker in line, then queue up behind it.

        Closing the channel (not cancelling the consumer) returns every message still in hand to
        the head of the queue in the same step that removes this consumer, so the next worker
        starts exactly where this one stopped and the offer's order holds.
        """
        self.release_requested = False
        self._generation += 1
        if self.channel is not None:
            await self.channel.close()
        await self.subscribe(connection, prefetch)

    def take_batch(self, first: AbstractIncomingMessage, limit: int) -> list[AbstractIncomingMessage]:
        batch = [first]
        while len(batch) < limit and not self.inbox.empty():
            batch.append(self.inbox.get_nowait())
        return batch


class BidWorker:
    def __init__(self, settings: Settings, worker: WorkerSettings) -> None:
        self.settings = settings
        self.worker = worker
        self.topology = Topology.from_settings(settings)
        self.roster = Roster(worker.worker_id, ttl=3 * HEARTBEAT_SECONDS)
        self._connection: AbstractRobustConnection | None = None
        self._pool: asyncpg.Pool | None = None
        self._publisher: Publisher | None = None
        self._shards: list[Shard] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.applied = 0

    async def start(self) -> None:
        self._pool = await create_pool(self.settings, min_size=1, max_size=self.settings.bid_shards + 1)
        self._connection = await broker.connect(self.settings)
        setup = await self._connection.channel()
        await broker.declare_bid_pipeline(setup, self.topology)
        await setup.close()
        self._publisher = Publisher(self._connection, self.topology, self.settings.dependency_timeout)
        await self._publisher.open()
        await self._join_roster()
        for index, name in enumerate(self.topology.shard_queues):
            shard = Shard(index, name)
            await shard.subscribe(self._connection, self.worker.prefetch)
            self._shards.append(shard)
            self._tasks.append(asyncio.create_task(self._run_shard(shard), name=f"shard-{index}"))
        self._tasks.append(asyncio.create_task(self._share_shards(), name="share-shards"))
        log.info(
            "worker %s consuming %d shards of %s (single active consumer each)",
            self.worker.worker_id,
            len(self._shards),
            self.topology.bids_exchange,
        )

    async def _join_roster(self) -> None:
        assert self._connection is not None
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            self.topology.workers_exchange, ExchangeType.FANOUT, auto_delete=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange)

        async def heard(message: AbstractIncomingMessage) -> None:
            self.roster.heard(message.body.decode(errors="replace"))

        await queue.consume(heard, no_ack=True)

        async def announce() -> None:
            while True:
                try:
                    await exchange.publish(Message(self.worker.worker_id.encode()), routing_key="")
                except Exception as exc:  # the robust connection is reconnecting; try next beat
                    log.debug("heartbeat not sent: %r", exc)
                await asyncio.sleep(HEARTBEAT_SECONDS)

        self._tasks.append(asyncio.create_task(announce(), name="heartbeat"))

    async def _share_shards(self) -> None:
        """Ask each shard loop to let go of a busy shard that another live worker owns."""
        while True:
            await asyncio.sleep(REBALANCE_SECONDS)
            members = self.roster.members()
            recent = time.monotonic() - REBALANCE_SECONDS
            for shard in self._shards:
                if shard.last_delivery >= recent and owner(shard.index, members) != self.worker.worker_id:
                    shard.release_requested = True

    async def stop(self) -> None:
        """Finish the batches in hand, then close: the broker hands the rest to the next worker.

        No consumer is cancelled first: a standby activated while this worker still held
        messages would apply later bids before earlier ones.
        """
        self._stopping.set()
        try:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            in_flight = [s.current for s in self._shards if s.current is not None and not s.current.done()]
            await asyncio.gather(*in_flight, return_exceptions=True)
            announcing = [s.announcing for s in self._shards if s.announcing is not None]
            await asyncio.gather(*announcing, return_exceptions=True)
            if self._publisher:
                await self._publisher.close()
        finally:
            # Whatever failed above, the consumers must go: closing the connection closes every
            # channel and returns every unacked message to its queue, in order.
            if self._connection:
                await self._connection.close()
            if self._pool:
                await self._pool.close()
        log.info("worker %s stopped after applying %d bids", self.worker.worker_id, self.applied)

    async def _run_shard(self, shard: Shard) -> None:
        while True:
            first = await shard.inbox.get()
            if shard.release_requested:
                assert self._connection is not None
                log.info("worker %s hands shard %d to its owner", self.worker.worker_id, shard.index)
                await shard.release(self._connection, self.worker.prefetch)
                observed.handed_over(shard.index)
                continue
            batch = shard.take_batch(first, self.worker.max_batch)
            # Shielded: a stop request lets the batch in hand commit and ack before the task ends.
            shard.current = asyncio.ensure_future(
                observed.batch(shard.index, batch, shard.inbox.empty, self._handle(shard, batch))
            )
            await asyncio.shield(shard.current)

    async def _handle(self, shard: Shard, batch: list[AbstractIncomingMessage]) -> None:
        bids: list[BidPlaced] = []
        good: list[AbstractIncomingMessage] = []
        for message in batch:
            try:
                event = decode(message.body)
                if not isinstance(event, BidPlaced):
                    raise MalformedEvent(f"expected bid.placed, got {event.type}")
                bids.append(event)
                good.append(message)
            except MalformedEvent as exc:
                log.error("shard %d: dead-lettering message %s: %s", shard.index, message.message_id, exc)
                await self._settle(message.reject(requeue=False))
                observed.dead_lettered("malformed")
        if not bids:
            return
        changed = await self._apply_until_done(shard, bids)
        # One ack for the whole batch, after the commit.
        await self._settle(good[-1].ack(multiple=True))
        self.applied += len(bids)
        # The last batch's events are awaited only now, once this batch is applied: the shard does
        # not sit idle while their confirms come back (up to a second each under `make bench`
        # drains), and one batch's events still all go out before the next batch's.
        if shard.announcing is not None:
            await shard.announcing
        shard.announcing = asyncio.ensure_future(self._announce(changed))

    async def _settle(self, settle: Awaitable[object]) -> None:
        try:
            await settle
        except Exception as exc:
            # The channel died with the connection: the broker hands these messages out again,
            # and the worker recognises the ones it already applied by their bid ids.
            log.warning("could not settle messages (%r); they will be redelivered", exc)

    async def _apply_until_done(self, shard: Shard, bids: list[BidPlaced]) -> list[dict[str, Any]]:
        """Retry the transaction until Postgres takes it: never requeue, never reorder."""
        return await retry(
            lambda: self._apply(bids),
            on=DATABASE_REFUSED,
            backoff=Backoff(0.1, 3.0),
            # Stopping: not acked, so the broker gives these bids to the next worker.
            give_up=self._stopping.is_set,
            waiting=lambda exc, delay: log.warning(
                "shard %d: applying %d bids failed (%r); retrying in %.1fs",
                shard.index,
                len(bids),
                exc,
                delay,
            ),
        )

    async def _apply(self, bids: list[BidPlaced]) -> list[dict[str, Any]]:
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            offers, now = await store.lock_offers(conn, sorted({b.offer_id for b in bids}))
            locked_at = time.time()
            # Checked under the offer locks: a bid applied by another worker is seen here.
            done = await store.already_applied(conn, [b.bid_id for b in bids])
            by_offer: dict[uuid.UUID, list[BidPlaced]] = defaultdict(list)
            seen = set(done)
            for bid in bids:
                if bid.bid_id in seen:
                    continue
                seen.add(bid.bid_id)
                if bid.offer_id not in offers:
                    log.error("bid %s names unknown offer %s; dropped", bid.bid_id, bid.offer_id)
                    continue
                by_offer[bid.offer_id].append(bid)
            if not by_offer:
                return []
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
            await store.insert_bids(conn, decisions, self.worker.worker_id)
            rows = await store.update_offers(conn, states)
        observed.judged(decisions)  # committed
        if self.worker.audit_log:
            self._audit(locked_at, decisions)
        return [offer_shape(r) for r in rows if r["id"] in changed_ids]

    def _audit(self, locked_at: float, decisions: list[Decision]) -> None:
        line = {
            "worker": self.worker.worker_id,
            "locked_at": locked_at,
            "committed_at": time.time(),
            "bids": [[str(d.bid.offer_id), str(d.bid.bid_id)] for d in decisions],
        }
        assert self.worker.audit_log is not None
        with open(self.worker.audit_log, "a") as f:
            f.write(json.dumps(line) + "\n")

    async def _announce(self, offers: list[dict[str, Any]]) -> None:
        """offer.updated for every offer whose highest bid moved; the database stays the truth."""
        if not offers or self._publisher is None:
            return
        publisher = self._publisher
        results = await asyncio.gather(
            *(publisher.send(OfferUpdated(o)) for o in offers),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("%d offer.updated events not published: %r", len(failed), failed[0])
