"""Every offer ends exactly once: several worker processes, duplicated closes, a redelivery, a kill -9."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import aio_pika
import aiohttp
import asyncpg

from auction_shared.broker import Topology
from auction_shared.events import BidUpdated, CloseOffer, OfferEnded, OfferSold
from tests.reliability.tap import EventTap
from tests.support.api import Api, place_concurrently
from tests.support.pipeline import wait_applied
from tests.support.waiting import wait_until

OFFER_COUNT = 12
WITH_BIDS = 8
GRACE = "1"


async def send_closes(settings, offer_ids: list[str], copies: int) -> None:
    """Closes as any replica's closer sends them: the shard's consumer must decide once."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology.from_settings(settings).events_exchange)
        for offer_id in offer_ids:
            close = CloseOffer(offer_id=uuid.UUID(offer_id))
            for _ in range(copies):  # the same message (same id) again and again
                await exchange.publish(
                    aio_pika.Message(close.encode(), headers=close.headers(), message_id=close.event_id),
                    routing_key=close.routing_key,
                    mandatory=True,
                )
    finally:
        await connection.close()


async def quiet(settings, conn: asyncpg.Connection) -> bool:
    """Nothing left to do: no outbox row of this run, no message waiting in a shard queue."""
    topology = Topology.from_settings(settings)
    if await conn.fetchval("SELECT count(*) FROM outbox WHERE exchange = $1", topology.events_exchange):
        return False
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        for name in topology.shard_queues:
            queue = await channel.declare_queue(name, passive=True)
            if queue.declaration_result.message_count:
                return False
    finally:
        await connection.close()
    return True


async def test_every_offer_ends_once_through_duplicates_a_redelivery_and_a_kill_9(stack, settings):
    workers = {n: stack.start_worker(n, END_GRACE_SECONDS=GRACE) for n in ("end-a", "end-b")}
    async with aiohttp.ClientSession() as session, EventTap(settings, "offer.*", "user.#") as tap:
        api = Api(session, stack.gateway_url)
        owner, *bidders = await api.accounts(4, "end")
        offers = [await api.create_offer(owner, bid_price=1, lifetime=6) for _ in range(OFFER_COUNT)]
        offer_ids = [o["id"] for o in offers]
        plan = [
            (bidders[n % 3], offer_ids[i], price)
            for i in range(WITH_BIDS)
            for n, price in enumerate((2, 3, 5))
        ]
        accepted = await place_concurrently(api, plan, concurrency=6)
        await wait_applied(settings.database_url, [b["id"] for b in accepted])
        conn = await asyncpg.connect(settings.database_url)
        try:
            applied_by = Counter(
                r["processed_by"]
                for r in await conn.fetch(
                    "SELECT processed_by FROM bids WHERE offer_id = ANY($1::uuid[])",
                    [uuid.UUID(o) for o in offer_ids],
                )
            )
            # The victim is the worker active on most of these offers' shards: it must hold closes.
            victim = applied_by.most_common(1)[0][0]
            # Duplicates before the end change nothing (not due yet).
            await send_closes(settings, offer_ids, copies=2)
            first_end = min(datetime.fromisoformat(o["ends_at"]) for o in offers)
            # Frozen just before the closes come due: every close for its shards is delivered to it and
            # held unacked; the kill then hands them back, and the survivors get them redelivered.
            await wait_until(
                lambda: datetime.now(timezone.utc) > first_end - timedelta(milliseconds=500), 30, "the end"
            )
            workers[victim].proc.send_signal(signal.SIGSTOP)
            await wait_until(
                lambda: datetime.now(timezone.utc) > first_end + timedelta(seconds=3), 30, "closes due"
            )
            await send_closes(settings, offer_ids, copies=3)
            await asyncio.sleep(1.0)  # let the frozen victim's shards take the closes into its hands
            workers[victim].kill()
            workers["end-c"] = stack.start_worker("end-c", END_GRACE_SECONDS=GRACE)
            await send_closes(settings, offer_ids, copies=2)

            async def all_ended() -> bool:
                live = await conn.fetchval(
                    "SELECT count(*) FROM offers WHERE id = ANY($1::uuid[]) AND status = 'live'",
                    [uuid.UUID(o) for o in offer_ids],
                )
                return live == 0

            await wait_until(all_ended, 60, "every offer to end")

            async def settled() -> bool:
                return await quiet(settings, conn)

            await wait_until(settled, 60, "the outbox and the shard queues to drain")
            await asyncio.sleep(1.0)  # the last confirmed events reach the tap's queue
            offer_rows = {
                str(r["id"]): r
                for r in await conn.fetch(
                    "SELECT * FROM offers WHERE id = ANY($1::uuid[])", [uuid.UUID(o) for o in offer_ids]
                )
            }
            won = Counter(
                str(r["offer_id"])
                for r in await conn.fetch(
                    "SELECT offer_id FROM bids WHERE offer_id = ANY($1::uuid[]) AND status = 'won' AND accepted",
                    [uuid.UUID(o) for o in offer_ids],
                )
            )
        finally:
            await conn.close()

    assert workers[victim].proc.returncode == -9
    ends: dict[tuple[str, str | None], set[str]] = {}
    for event in tap.events:
        if isinstance(event, (OfferSold, OfferEnded)):
            key = (event.offer_id, str(event.recipient) if event.recipient else None)
            ends.setdefault(key, set()).add(event.event_id)
    won_told = Counter(
        c.bid["offer_id"]
        for e in tap.first_copies()
        if isinstance(e, BidUpdated)
        for c in e.changes
        if c.bid["status"] == "won"
    )
    for index, offer_id in enumerate(offer_ids):
        row = offer_rows[offer_id]
        if index < WITH_BIDS:
            assert (row["status"], row["end_reason"]) == ("sold", "ended"), offer_id
            assert won[offer_id] == 1 and won_told[offer_id] == 1
        else:
            assert (row["status"], row["end_reason"]) == ("ended", "no_bids"), offer_id
            assert won[offer_id] == 0 and won_told[offer_id] == 0
        # One end event, public and the seller's own copy, each published once (a copy of the same
        # event id after a crash is the one at-least-once delivery allows; consumers drop it).
        assert len(ends[(offer_id, None)]) == 1, offer_id
        assert len(ends[(offer_id, owner.user_id)]) == 1, offer_id
    kinds = {type(e).__name__ for e in tap.events if isinstance(e, (OfferSold, OfferEnded))}
    assert kinds == {"OfferSold", "OfferEnded"}
