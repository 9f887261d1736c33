"""2b. The worker alone: shards filled with the workers stopped, then timed while they drain.

The same 100,000 bids (over 1,000 offers) are queued three times, on fresh offers each time, and
drained by one bid-worker, by two, and by the bare consumer (prefetch 1000, ack multiple, one
set-based statement per batch).

A little over the usual module size: filling, draining, timing and checking a drain belong together,
and each of the three consumers runs through the same steps here.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import aio_pika
import asyncpg

from auction_shared import rules
from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidPlaced
from tests.support.processes import ServiceProcess

from . import cpu
from .memory import MemoryWatch
from .profile import Profiler

CONFIRM_WINDOW = 1000
CENT = Decimal("0.01")
# The baseline consumer applies no rules: its offers end at the highest bid.
BARE = "bare consumer"
BIDDERS = 200


@dataclass
class Expected:
    offer_ids: list[uuid.UUID]
    counts: dict[uuid.UUID, int]
    top: dict[uuid.UUID, Decimal]  # the highest bid: what the bare consumer (no rules) ends at
    price: dict[uuid.UUID, Decimal]  # the price the auction rules give, bids applied in queue order

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class DrainRun:
    label: str
    bids: int
    offers: int
    fill_seconds: float
    wall_seconds: float = float("nan")  # from starting the consumer process to the last bid applied
    active_seconds: float = float("nan")  # from the last poll that saw none applied to the last bid
    problems: list[str] = field(default_factory=list)
    # Microseconds of CPU per bid by kind of process (see cpu.py), from the consumer's start to the end.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def bids_per_s(self) -> float:
        return self.bids / self.active_seconds if self.active_seconds > 0 else float("nan")

    @property
    def ok(self) -> bool:
        return not self.problems


async def insert_offers(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    """Offers straight into the table (the offers service would announce each one)."""
    ids = [uuid.uuid4() for _ in range(count)]
    seller = uuid.uuid4()
    go_live = datetime.now(timezone.utc) - timedelta(minutes=1)
    await pool.execute(
        "INSERT INTO offers (id, title, start_price, bid_price, go_live, created_by_id, created_by)"
        " SELECT id, 'drain lot', 1.00, 1.00, $2, $3, 'bench-seller' FROM unnest($1::uuid[]) AS t(id)",
        ids,
        go_live,
        seller,
    )
    return ids


def plan_bids(offer_ids: list[uuid.UUID], total: int, seed: int) -> tuple[list[BidPlaced], Expected]:
    rng = random.Random(seed)
    bidders = [(uuid.uuid4(), f"bench_bidder_{i}") for i in range(BIDDERS)]
    counts = {o: 0 for o in offer_ids}
    top = {o: Decimal("1.00") for o in offer_ids}
    now = datetime.now(timezone.utc)
    go_live = now - timedelta(minutes=1)
    auctions = {
        o: rules.Auction(o, rules.Terms(Decimal("1.00"), go_live), Decimal("1.00"), None) for o in offer_ids
    }
    bids = []
    for i in range(total):
        offer = offer_ids[i % len(offer_ids)]
        user_id, username = bidders[rng.randrange(BIDDERS)]
        price = Decimal(rng.randrange(200, 10_000_000)) / 100
        # Half the bids are proxy bids, up to half as much again as their price.
        ceiling = (price * Decimal(rng.randrange(100, 150)) / 100).quantize(CENT) if i % 2 else None
        bid = BidPlaced(
            bid_id=uuid.uuid4(),
            offer_id=offer,
            user_id=user_id,
            username=username,
            bid_price=price,
            max_price=ceiling,
            placed_at=now,
        )
        bids.append(bid)
        auctions[offer] = rules.place(auctions[offer], bid).auction
        counts[offer] += 1
        top[offer] = max(top[offer], price)
    return bids, Expected(offer_ids, counts, top, {o: a.price for o, a in auctions.items()})


async def publish(settings: Settings, bids: list[BidPlaced]) -> float:
    """Publish as the bids service does (persistent, mandatory, confirmed); return the seconds taken."""
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.events_exchange, ensure=False)
        started = time.monotonic()
        for first in range(0, len(bids), CONFIRM_WINDOW):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            bid.encode(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(bid.bid_id),
                            headers={"offer_id": str(bid.offer_id)},
                        ),
                        routing_key="bid.placed",
                        mandatory=True,
                    )
                    for bid in bids[first : first + CONFIRM_WINDOW]
                )
            )
        return time.monotonic() - started
    finally:
        await connection.close()


async def queued(settings: Settings) -> int:
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        total = 0
        for name in topology.shard_queues:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total
    finally:
        await connection.close()


async def applied(pool: asyncpg.Pool, offer_ids: list[uuid.UUID]) -> int:
    return await pool.fetchval(
        "SELECT coalesce(sum(bid_count), 0) FROM offers WHERE id = ANY($1::uuid[])", offer_ids
    )


async def check(pool: asyncpg.Pool, expected: Expected, by_rules: bool) -> list[str]:
    """Every offer's count and price as the bids sent say (by the auction rules, or the highest bid
    for the bare consumer); every bid a row, once."""
    problems = []
    rows = await pool.fetch(
        "SELECT id, bid_count, bid_price FROM offers WHERE id = ANY($1::uuid[])", expected.offer_ids
    )
    want = expected.price if by_rules else expected.top
    wrong_count = [r for r in rows if r["bid_count"] != expected.counts[r["id"]]]
    wrong_price = [r for r in rows if r["bid_price"] != want[r["id"]]]
    if wrong_count:
        r = wrong_count[0]
        problems.append(
            f"{len(wrong_count)} offers with a wrong bid_count (e.g. {r['id']}: "
            f"{r['bid_count']} != {expected.counts[r['id']]})"
        )
    if wrong_price:
        r = wrong_price[0]
        problems.append(
            f"{len(wrong_price)} offers whose price is not the expected one (e.g. {r['id']}: "
            f"{r['bid_price']} != {want[r['id']]})"
        )
    rows_count = await pool.fetchval(
        "SELECT count(*) FROM bids WHERE offer_id = ANY($1::uuid[])", expected.offer_ids
    )
    if rows_count != expected.total:
        problems.append(f"{rows_count} bid rows != {expected.total} bids queued")
    return problems


async def measure_one(
    label: str,
    settings: Settings,
    pool: asyncpg.Pool,
    bids_total: int,
    offers_total: int,
    seed: int,
    start: Callable[[], list[ServiceProcess]],
    memory: MemoryWatch,
    profiler: Profiler,
    processes: Callable[[], list[ServiceProcess]],
) -> DrainRun:
    offer_ids = await insert_offers(pool, offers_total)
    bids, expected = plan_bids(offer_ids, bids_total, seed)
    fill_seconds = await publish(settings, bids)
    del bids
    run = DrainRun(label, bids_total, offers_total, fill_seconds)
    waiting = await queued(settings)
    if waiting < bids_total:
        run.problems.append(f"only {waiting} of {bids_total} bids in the shard queues after publishing")
    before = cpu.snapshot(processes(), await cpu.database_backends(pool))
    spawned = time.monotonic()
    starting = asyncio.ensure_future(asyncio.to_thread(start))
    # The last moment nothing was applied yet: the drain began after it (a conservative start).
    idle_until = spawned
    deadline = spawned + 120 + bids_total / 500
    procs: list[ServiceProcess] = []
    profiled = False
    try:
        while True:
            if starting.done() and not profiled:
                profiled = True
                for proc in starting.result():
                    profiler.start(f"drain-{proc.name}", proc.pid)
            done = await applied(pool, offer_ids)
            now = time.monotonic()
            if not done:
                idle_until = now
            if done >= bids_total:
                run.wall_seconds = now - spawned
                run.active_seconds = now - idle_until
                break
            if now > deadline:
                run.problems.append(f"only {done} of {bids_total} bids applied after {now - spawned:.0f}s")
                break
            await asyncio.sleep(0.05)
    finally:
        procs = await starting
        memory.watch(procs)
        memory.read()
        profiler.stop()
    run.cpu = cpu.per_request(
        before, cpu.snapshot(processes(), await cpu.database_backends(pool)), bids_total
    )
    await asyncio.sleep(0.5)  # a bid applied twice would push a count past the expected one
    run.problems.extend(await check(pool, expected, by_rules=label != BARE))
    for proc in procs:
        proc.terminate()
    print(
        f"  drain {label}: {run.bids_per_s:.0f} bids/s ({run.active_seconds:.1f}s active, "
        f"{run.wall_seconds:.1f}s from start; filled in {fill_seconds:.1f}s) ok={run.ok} {run.problems}",
        flush=True,
    )
    return run
