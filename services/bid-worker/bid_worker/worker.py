"""BidWorker: the bid-worker's parts put together, and the ordered batch loop of each shard.

A little over the usual module size: starting and stopping every part in the right order, the
health the probe asks for and the supervised shard loops are this class's one job; the parts
themselves live in shards.py, applying.py, announcing.py, dead_letters.py, closer.py and roster.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone

import asyncpg
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from auction_shared import broker
from auction_shared.broker import Publisher, Topology
from auction_shared.config import Settings
from auction_shared.db import create_pool
from auction_shared.events import BidPlaced, BidsPlaced, CloseOffer, MalformedEvent, decode
from auction_shared.outages import broker_is_up, database_is_up
from auction_shared.outbox import OutboxRelay
from auction_shared.retry import Backoff

from . import observed
from .applying import Applier, ShardMessage
from .audit import AuditLog
from .closer import Closer
from .dead_letter_queue import measure_depth, watch_depth
from .dead_letters import DeadLetters
from .roster import join_roster, new_roster, share_shards
from .settings import WorkerSettings
from .shards import WAKE, Delivery, Shard

log = logging.getLogger("bid_worker")

# A shard loop that failed this many times in a row gives up: the process exits (non-zero) so the
# orchestrator restarts it, rather than stay the active consumer of a shard nobody processes.
MAX_SHARD_RESTARTS = 5
# A bid stamped further ahead than this (intake's clock against ours) is not a bid intake sent.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class BidWorker:
    """Applies the queued bids of every shard, one batch and one transaction at a time, in queue order.

    Parameters:
        settings: the process settings (database and broker URLs, the broker prefix naming the
            topology, `bid_shards`, `dependency_timeout` bounding each call to a dependency).
        worker: the worker's own settings: `prefetch` (unacked messages per shard), `max_batch`
            (messages per transaction), `worker_id` (its name on the roster and in
            `bids.processed_by`), `health_port` (read by `__main__`), `audit_log` (a file that gets
            one line per committed batch, for the failover tests; None for none),
            `end_grace_seconds` (how far past `ends_at`, by the database clock, a close may end an
            offer), `close_scan_seconds` (how often this replica looks for offers due to close).

    `start()` consumes every shard (the broker lets one consumer per shard be active), `stop()`
    finishes the batches in hand and leaves. `failed` is set when a shard loop cannot be restarted:
    the process must then exit. `health()` tells whether each dependency and every shard loop is up.
    """

    def __init__(self, settings: Settings, worker: WorkerSettings) -> None:
        self.settings = settings
        self.worker = worker
        self.topology = Topology.from_settings(settings)
        self.roster = new_roster(worker.worker_id)
        self.failed = asyncio.Event()
        self.applied = 0
        self.ended = 0
        self.shard_restarts = 0
        # Batches in their transaction at once, over all shards: a shard waiting for a turn gathers
        # a fuller batch meanwhile, and one batch costs the database and the outbox about the same
        # whatever its size.
        self._turns = asyncio.Semaphore(worker.concurrent_batches)
        self._connection: AbstractRobustConnection | None = None
        self._pool: asyncpg.Pool | None = None
        self._publisher: Publisher | None = None
        self._relay: OutboxRelay | None = None
        self._applier: Applier | None = None
        self._dead: DeadLetters | None = None
        self._closer: Closer | None = None
        self._audit = AuditLog(worker.audit_log, worker.worker_id) if worker.audit_log else None
        self._shards: list[Shard] = []
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:
        dead = self._dead.count if self._dead else 0
        retries = self._applier.retries if self._applier else 0
        return (
            f"<BidWorker {self.worker.worker_id} shards={len(self._shards)} applied={self.applied}"
            f" ended={self.ended} closes_sent={self._closer.sent if self._closer else 0}"
            f" batches={self.batches} dead_lettered={dead} retries={retries}"
            f" shard_restarts={self.shard_restarts}>"
        )

    @property
    def batches(self) -> int:
        """Batches applied (committed) so far, over all shards."""
        return sum(shard.batches for shard in self._shards)

    async def start(self) -> None:
        self._pool = await create_pool(self.settings, min_size=1, max_size=self.settings.bid_shards + 3)
        self._connection = await broker.connect(self.settings)
        await self._declare_pipeline()
        self._publisher = Publisher(self._connection, self.topology, self.settings.dependency_timeout)
        await self._publisher.open()
        observed.started(self.settings.bid_shards)
        self._dead = DeadLetters(self._connection, self.topology, self.settings.dependency_timeout)
        await self._dead.open()
        self._relay = OutboxRelay(self._pool, self._publisher)
        self._tasks.append(asyncio.create_task(self._relay.run(), name="outbox-relay"))
        grace = timedelta(seconds=self.worker.end_grace_seconds)
        self._applier = Applier(self._pool, self._relay, self.worker.worker_id, grace, self._stopping.is_set)
        self._tasks.append(await join_roster(self._connection, self.topology, self.roster))
        for index, name in enumerate(self.topology.shard_queues):
            shard = Shard(index, name)
            await shard.subscribe(self._connection, self.worker.prefetch)
            self._shards.append(shard)
            self._loops.append(asyncio.create_task(self._supervise(shard), name=f"shard-{index}"))
        self._tasks.append(asyncio.create_task(share_shards(self.roster, self._shards), name="share-shards"))
        self._closer = Closer(
            self._pool, self._publisher, self.worker.end_grace_seconds, self.worker.close_scan_seconds
        )
        self._tasks.append(asyncio.create_task(self._closer.run(), name="closer"))
        self._tasks.append(
            asyncio.create_task(
                watch_depth(self._connection, self.topology, self.settings.dependency_timeout),
                name="dead-letter-depth",
            )
        )
        log.info("%r consuming %s (single active consumer each)", self, self.topology.bids_exchange)

    async def stop(self) -> None:
        """Finish the batches in hand, then close: the broker hands the rest to the next worker.

        No consumer is cancelled first: a standby activated while this worker still held
        messages would apply later bids before earlier ones.
        """
        self._stopping.set()
        try:
            tasks = [*self._loops, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            in_flight = [s.current for s in self._shards if s.current is not None and not s.current.done()]
            await asyncio.gather(*in_flight, return_exceptions=True)
            if self._dead is not None:
                await self._dead.close()
            if self._publisher:
                await self._publisher.close()
        finally:
            # Whatever failed above, the consumers must go: closing the connection closes every
            # channel and returns every unacked message to its queue, in order.
            if self._connection:
                await self._connection.close()
            if self._pool:
                await self._pool.close()
            if self._audit is not None:
                await asyncio.to_thread(self._audit.close)
        log.info("%r stopped", self)

    # --- health ---------------------------------------------------------------------------------

    def broker_up(self) -> bool:
        return self._connection is not None and broker_is_up(self._connection)

    async def database_up(self) -> bool:
        return self._pool is not None and await database_is_up(self._pool, self.settings.dependency_timeout)

    def shard_loops_alive(self) -> bool:
        """Every shard has a running loop (a loop being restarted counts as alive)."""
        return bool(self._loops) and not any(loop.done() for loop in self._loops)

    async def dead_letter_depth(self) -> int | None:
        """Messages waiting in the dead-letter queue (None while the broker is away)."""
        if self._connection is None:
            return None
        return await measure_depth(self._connection, self.topology, self.settings.dependency_timeout)

    async def health(self) -> dict[str, bool]:
        """Whether each dependency and the shard loops are up, by name (what /health shows)."""
        return {
            "postgres": await self.database_up(),
            "rabbitmq": self.broker_up(),
            "shard_loops": self.shard_loops_alive(),
        }

    # --- the shard loops ------------------------------------------------------------------------

    async def _supervise(self, shard: Shard) -> None:
        """Run the shard's loop; if it dies, give its messages back in order and run it again."""
        failures = 0
        backoff = Backoff(0.5, 2.0)
        while True:
            batches = shard.batches
            try:
                await self._run_shard(shard)
            except asyncio.CancelledError:
                raise
            except Exception:
                if shard.batches != batches:  # the loop did work since it last failed
                    failures = 0
                    backoff.reset()
                failures += 1
                self.shard_restarts += 1
                log.exception("shard %d loop failed (%d in a row); restarting it", shard.index, failures)
                if failures >= MAX_SHARD_RESTARTS:
                    log.critical("shard %d loop keeps failing: the worker gives up", shard.index)
                    self.failed.set()
                    return
                await backoff.wait()
                try:
                    await self._resubscribe(shard)
                except Exception:
                    log.exception("shard %d could not be resubscribed", shard.index)
                    # Nothing consumes the shard now, so no message would wake its loop: the loop
                    # tries again at once (a failure more, after the backoff).
                    shard.release_requested = True
                    shard.inbox.put_nowait(WAKE)

    async def _resubscribe(self, shard: Shard) -> None:
        """Give back what the shard holds and queue up for it again. A shard queue that is gone
        (deleted in the management UI, say) is declared again, with the rest of the pipeline:
        the bids in it are lost with it, the ones published from then on are processed."""
        assert self._connection is not None
        await self._connection.connected.wait()  # a broker outage is waited out, not counted as failures
        try:
            await shard.release(self._connection, self.worker.prefetch)
        except ChannelNotFoundEntity:
            log.warning("shard %d's queue %s is gone: declaring it again", shard.index, shard.queue_name)
            await self._declare_pipeline()
            await shard.subscribe(self._connection, self.worker.prefetch)

    async def _declare_pipeline(self) -> None:
        """Declare (idempotently) the exchanges and shard queues bids flow through."""
        assert self._connection is not None
        setup = await self._connection.channel()
        try:
            await broker.declare_bid_pipeline(setup, self.topology)
        finally:
            await setup.close()

    async def _run_shard(self, shard: Shard) -> None:
        while True:
            first = await shard.inbox.get()
            if shard.release_requested:
                log.info("worker %s hands shard %d to its owner", self.worker.worker_id, shard.index)
                await self._resubscribe(shard)
                observed.handed_over(shard.index)
                continue
            if not isinstance(first, Delivery):
                continue  # a wake-up with nothing to do
            # The first message is in hand: a full batch is full_batch - 1 more.
            await shard.gather(self.worker.full_batch - 1, self.worker.batch_wait_ms / 1000)
            async with self._turns:
                batch = shard.take_batch(first, self.worker.max_batch)
                # Shielded: a stop request lets the batch in hand commit and ack before the task ends.
                shard.current = asyncio.ensure_future(
                    observed.batch(shard.index, batch, shard.inbox.empty, self._handle(shard, batch))
                )
                await asyncio.shield(shard.current)

    async def _handle(self, shard: Shard, batch: list[Delivery]) -> None:
        """Check the batch's messages, then apply them in order, in transactions of at most
        `max_batch` bids and closes (a message of several bids is never split)."""
        assert self._dead is not None
        latest = datetime.now(timezone.utc) + MAX_CLOCK_SKEW
        group: list[tuple[Delivery, list[ShardMessage]]] = []
        size = 0
        for message in batch:
            try:
                items = shard_work(message, latest)
            except MalformedEvent as exc:
                await self._dead.send(message, "malformed", str(exc))
                continue
            if group and size + len(items) > self.worker.max_batch:
                await self._apply(shard, group)
                group, size = [], 0
            group.append((message, items))
            size += len(items)
        if group:
            await self._apply(shard, group)

    async def _apply(self, shard: Shard, group: list[tuple[Delivery, list[ShardMessage]]]) -> None:
        """One transaction for the group's work, then its dead letters and one ack for the rest."""
        assert self._applier is not None
        messages = [message for message, _ in group]
        work = [item for _, items in group for item in items]
        source = [at for at, (_, items) in enumerate(group) for _ in items]  # each item's message
        observed.batch_size(shard.index, len(work))
        applied = await self._applier.apply_until_done(shard.index, work)
        settled_alone = await self._dead_letter(applied.dead, work, source, messages)
        # One ack for the rest of the batch, after the commit (on a message not settled alone).
        last = max((i for i in range(len(messages)) if i not in settled_alone), default=None)
        if last is not None:
            await self._settle(messages[last].ack(multiple=True))
        observed.judged(applied.decisions)  # committed
        self.applied += len(applied.decisions)
        self.ended += applied.ended
        shard.batches += 1
        if self._audit is not None and applied.decisions:
            self._audit.batch(applied.locked_at, [(d.bid.offer_id, d.bid.bid_id) for d in applied.decisions])

    async def _dead_letter(
        self,
        dead: dict[int, tuple[str, str]],
        work: list[ShardMessage],
        source: list[int],
        messages: list[Delivery],
    ) -> set[int]:
        """Dead-letter the items of work that can never be applied; return the messages settled alone.

        A message that holds one item goes as it is, settled alone. An item of a message holding
        several goes as a message of its own, and its message is acked with the rest of the batch;
        if that copy cannot be sent, its whole message is rejected to the dead-letter queue (the
        items already applied in it are recognised by their ids, should it be replayed)."""
        assert self._dead is not None
        held = Counter(source)
        settled_alone: set[int] = set()
        for index, (kind, reason) in sorted(dead.items()):
            at = source[index]
            if at in settled_alone:
                continue
            item = work[index]
            if held[at] == 1:
                await self._dead.send(messages[at], kind, reason)
                settled_alone.add(at)
            elif isinstance(item, BidPlaced) and not await self._dead.send(
                messages[at], kind, reason, part=item
            ):
                await self._dead.reject(messages[at])
                settled_alone.add(at)
        return settled_alone

    async def _settle(self, settle: Awaitable[object]) -> None:
        try:
            await settle
        except Exception as exc:
            # The channel died with the connection: the broker hands these messages out again,
            # and the worker recognises the ones it already applied by their bid ids.
            log.warning("could not settle messages (%r); they will be redelivered", exc)


def shard_work(message: Delivery, latest: datetime) -> list[ShardMessage]:
    """The bids or the close a shard message holds, every field checked; MalformedEvent says why not.

    `latest`: the latest `placed_at` a bid may carry (ours plus the clock skew allowed)."""
    event = decode(message.body)
    items: list[ShardMessage]
    if isinstance(event, BidsPlaced):
        items = list(event.bids)
    elif isinstance(event, (BidPlaced, CloseOffer)):
        items = [event]
    else:
        raise MalformedEvent(f"{event.type} does not belong in a shard queue")
    # The header placed it in its shard: one that names another offer breaks that offer's order.
    header = message.headers.get("offer_id")
    if header != str(event.offer_id):
        raise MalformedEvent("the offer_id header does not name the offer of the message")
    for item in items:
        if isinstance(item, BidPlaced) and item.placed_at > latest:
            raise MalformedEvent("placed_at is in the future")
    return items
