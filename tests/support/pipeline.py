"""Tools for bid pipeline tests: a tap on the broker that sees queue order, and database probes."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidPlaced, BidsPlaced, decode
from bid_worker import sharing
from tests.support.model import ModelBid
from tests.support.waiting import wait_until


class BidTap:
    """An extra queue bound to `bid.placed`: with one publishing channel (one bids process), it
    receives each offer's bids in the same order as the offer's shard queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.order: dict[str, list[ModelBid]] = defaultdict(list)
        self.seen: list[str] = []
        self.bids: list[BidPlaced] = []
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._queue_name = f"{settings.amqp_prefix}.tap.{uuid.uuid4().hex[:8]}"

    async def __aenter__(self) -> BidTap:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await channel.declare_exchange(
            Topology.from_settings(self.settings).events_exchange, "topic", durable=True
        )
        queue = await channel.declare_queue(self._queue_name, exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="bid.placed")
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = decode(message.body)
        except ValueError:
            return  # poison messages published by a test are not bids
        # Several bids of one offer may travel in one message: in queue order, one after the other.
        for bid in event.bids if isinstance(event, BidsPlaced) else [event]:
            if not isinstance(bid, BidPlaced):
                return
            self.seen.append(str(bid.bid_id))
            self.bids.append(bid)
            self.order[str(bid.offer_id)].append(
                ModelBid(str(bid.bid_id), bid.bid_price, bid.username, bid.max_price)
            )

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        await wait_until(lambda: len(self.seen) >= count, timeout, f"the tap to see {count} bids")

    async def bids_until(self, bid_id: str, timeout: float = 30.0) -> list[BidPlaced]:
        """Every bid seen up to `bid_id` (a later bid from the same publishing channel arrives after
        all earlier ones, so this is everything queued before it)."""
        await wait_until(lambda: bid_id in self.seen, timeout, f"the tap to see bid {bid_id}")
        return self.bids[: self.seen.index(bid_id) + 1]

    async def __aexit__(self, *exc: Any) -> None:
        if self._connection is not None:
            await self._connection.close()


async def wait_applied(database_url: str, bid_ids: Iterable[str], timeout: float = 120.0) -> None:
    """Wait until every bid id has a final row in `bids` (the worker commits a bid with its effects;
    intake's pending row is not one)."""
    ids = [uuid.UUID(b) for b in bid_ids]
    conn = await asyncpg.connect(database_url)
    try:

        async def all_there() -> bool:
            return await count() == len(ids)

        async def count() -> int:
            return await conn.fetchval(
                "SELECT count(*) FROM bids WHERE id = ANY($1::uuid[]) AND status <> 'pending'", ids
            )

        try:
            await wait_until(all_there, timeout, "the bids to be applied")
        except AssertionError:
            raise AssertionError(f"only {await count()}/{len(ids)} bids applied after {timeout}s") from None
    finally:
        await conn.close()


async def offer_states(database_url: str, offer_ids: Iterable[str]) -> dict[str, asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, start_price, bid_price, highest_bid_id, highest_bidder, bid_count, sold, status,"
            " end_reason, reserve_price, min_increment, version, ends_at FROM offers WHERE id = ANY($1::uuid[])",
            [uuid.UUID(o) for o in offer_ids],
        )
        return {str(r["id"]): r for r in rows}
    finally:
        await conn.close()


async def bid_rows(database_url: str, offer_ids: Iterable[str]) -> dict[str, list[asyncpg.Record]]:
    """Every bid row of the offers, in the order the worker applied them (seq)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, offer_id, bid_price, username, status, reason, seq, processed_by FROM bids"
            " WHERE offer_id = ANY($1::uuid[]) ORDER BY seq",
            [uuid.UUID(o) for o in offer_ids],
        )
    finally:
        await conn.close()
    by_offer: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        by_offer[str(r["offer_id"])].append(r)
    return by_offer


def price(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def shards_of(settings: Settings, offer_ids: Iterable[str]) -> dict[str, int]:
    """The shard each offer's bids go to, found by routing a probe through the consistent hash.

    Only while no worker consumes: a consumer on every shard queue takes each probe back and names
    its queue. Taken, not counted: a quorum queue's message count can trail the confirm and the
    purge, so a count could credit an offer to the shard of the probe before it (and a quorum queue
    with a single active consumer refuses basic.get)."""
    topology = Topology.from_settings(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    found: dict[str, int] = {}
    arrived: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    try:
        channel = await connection.channel(publisher_confirms=True)
        bids = await channel.get_exchange(topology.bids_exchange)
        for index, name in enumerate(topology.shard_queues):
            queue = await channel.declare_queue(name, passive=True)

            async def taken(message: aio_pika.abc.AbstractIncomingMessage, index: int = index) -> None:
                arrived.put_nowait((message.body.decode(), index))

            await queue.consume(taken, no_ack=True)
        wanted = list(offer_ids)
        for offer_id in wanted:
            probe = aio_pika.Message(offer_id.encode(), headers={"offer_id": offer_id})
            await bids.publish(probe, routing_key="", mandatory=True)
            while offer_id not in found:
                try:
                    body, index = await asyncio.wait_for(arrived.get(), timeout=10)
                except asyncio.TimeoutError:
                    raise AssertionError(f"the probe for offer {offer_id} reached no shard queue") from None
                if body in wanted:
                    found[body] = index
    finally:
        await connection.close()
    return found


def names_owning(shard_of_offer: dict[str, int], shards: int, first: str, second: str) -> tuple[str, str]:
    """Two worker names (`first`N, `second`N) such that, by the sharing function, each owns a shard
    holding some of these offers: a test that kills one of them then kills a worker with work."""
    used = set(shard_of_offer.values())
    for n in range(1000):
        names = (f"{first}{n}", f"{second}{n}")
        if {sharing.owner(s, list(names)) for s in used} == set(names):
            return names
    raise AssertionError("no pair of names splits these offers' shards")


async def applied_count(conn: asyncpg.Connection, worker: str, offers: list[str], after_seq: int = 0) -> int:
    """Bids of `offers` that `worker` applied (after the bid numbered `after_seq`, if given)."""
    return await conn.fetchval(
        "SELECT count(*) FROM bids WHERE processed_by = $1 AND offer_id = ANY($2::uuid[]) AND seq > $3",
        worker,
        [uuid.UUID(o) for o in offers],
        after_seq,
    )
