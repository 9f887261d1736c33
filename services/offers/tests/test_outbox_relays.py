"""Two offers replicas on one database: one relay publishes, in order; a bad row is set aside."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aio_pika
import asyncpg
import pytest

from auction_shared import outbox
from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.outbox import RELAY
from offers.app import create_app
from tests.support.waiting import wait_until

# Enough rows that a relay needs several batches (200 rows each) for them.
OFFERS = 600


@pytest.fixture
async def own(settings: Settings):
    """The run's database, with an exchange of this test's own (its rows are its relays' only)."""
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}.relays{uuid.uuid4().hex[:6]}")
    yield own
    connection = await aio_pika.connect(own.amqp_url)
    try:
        await (await connection.channel()).exchange_delete(Topology.from_settings(own).events_exchange)
    finally:
        await connection.close()


class Tap:
    """Every offer event on the exchange, in the order the broker received them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (routing key, offer id)

    async def attach(self, connection: aio_pika.abc.AbstractConnection, topology: Topology) -> None:
        """A queue of its own, bound to every `offer.*` event of the topology's exchange."""
        channel = await connection.channel()
        exchange = await channel.declare_exchange(topology.events_exchange, "topic", durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="offer.*")
        await queue.consume(self.take, no_ack=True)

    async def take(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        # The rows these tests write carry the offer's name; a real offer.created carries the offer.
        offer = event["offer"] if "offer" in event else event["data"]["id"]
        self.seen.append((message.routing_key or "", offer))


@pytest.fixture
async def tap(own: Settings) -> AsyncIterator[Tap]:
    tap = Tap()
    connection = await aio_pika.connect(own.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            Topology.from_settings(own).events_exchange, "topic", durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="offer.*")
        await queue.consume(tap.take, no_ack=True)
        yield tap
    finally:
        await connection.close()


@pytest.fixture
async def db(own: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own.database_url)
    yield conn
    await conn.close()


async def write_rows(conn: asyncpg.Connection, exchange: str, rows: list[tuple[str, bytes]]) -> None:
    await conn.executemany(
        "INSERT INTO outbox (exchange, routing_key, body) VALUES ($1, $2, $3)",
        [(exchange, key, body) for key, body in rows],
    )


async def drained(db: asyncpg.Connection, topology: Topology) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox WHERE exchange = $1", topology.events_exchange) == 0


def event(key: str, offer: str) -> tuple[str, bytes]:
    return key, json.dumps({"id": str(uuid.uuid4()), "type": key, "offer": offer}).encode()


def sales_after_creations(offers: list[str]) -> list[tuple[str, bytes]]:
    # Every offer.created first, then the offer.sold events newest offer first: the sale of the last
    # offer sits right behind its creation, and a second relay taking the next batch at the same
    # time would publish it first.
    return [event("offer.created", o) for o in offers] + [event("offer.sold", o) for o in reversed(offers)]


def assert_created_before_sold(seen: list[tuple[str, str]], offers: list[str]) -> None:
    first: dict[tuple[str, str], int] = {}
    for index, item in enumerate(seen):
        first.setdefault(item, index)
    for offer in offers:
        assert first[("offer.created", offer)] < first[("offer.sold", offer)], f"{offer} sold before created"


async def test_two_offers_replicas_publish_each_offers_sale_after_its_creation_and_a_standby_takes_over(
    aiohttp_client, own: Settings, tap: Tap, db: asyncpg.Connection
):
    topology = Topology.from_settings(own)
    replicas = [await aiohttp_client(create_app(own)) for _ in range(2)]
    relays = [r.app[RELAY] for r in replicas]
    offers = [f"o{n}" for n in range(OFFERS)]
    await write_rows(db, topology.events_exchange, sales_after_creations(offers))
    await wait_until(lambda: len(tap.seen) >= 2 * OFFERS, 60, "every event published")
    assert_created_before_sold(tap.seen, offers)
    assert sum(r.active for r in relays) == 1, "not exactly one active relay"

    # The active replica stops; the other takes the outbox over.
    leader = next(i for i, r in enumerate(relays) if r.active)
    await replicas[leader].close()
    standby = relays[1 - leader]
    await wait_until(lambda: standby.active, 30, "the standby relay to take over")
    later = [f"p{n}" for n in range(50)]
    await write_rows(db, topology.events_exchange, sales_after_creations(later))
    await wait_until(lambda: len(tap.seen) >= 2 * (OFFERS + 50), 60, "the later events published")
    assert_created_before_sold(tap.seen[2 * OFFERS :], later)
    await wait_until(lambda: drained(db, topology), 30, "the relay to commit")


async def test_a_row_that_cannot_be_published_is_set_aside_with_its_reason_and_the_rest_go_on(
    aiohttp_client, own: Settings, tap: Tap, db: asyncpg.Connection
):
    topology = Topology.from_settings(own)
    # Written before the relay starts, so the bad rows are first in line.
    bad = [("offer.created", b"not json"), ("offer.created", b'{"no": "id"}')]
    await write_rows(db, topology.events_exchange, [*bad, event("offer.created", "after")])
    await aiohttp_client(create_app(own))
    await wait_until(lambda: ("offer.created", "after") in tap.seen, 30, "the row behind the bad ones")
    await wait_until(lambda: drained(db, topology), 30, "the relay to commit")
    dead = await db.fetch(
        "SELECT body, reason FROM outbox_dead WHERE exchange = $1 ORDER BY id", topology.events_exchange
    )
    assert [bytes(r["body"]) for r in dead] == [b for _, b in bad]
    assert "JSONDecodeError" in dead[0]["reason"] and "not an event with an id" in dead[1]["reason"]
    assert tap.seen == [("offer.created", "after")]


HOLDER = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND objid = (hashtextextended('auction_shared.outbox:' || $1, 0) & 4294967295)::oid"
)


async def test_when_the_active_relays_database_session_dies_another_session_takes_the_outbox_over(
    aiohttp_client, own: Settings, tap: Tap, db: asyncpg.Connection
):
    topology = Topology.from_settings(own)
    for _ in range(2):
        await aiohttp_client(create_app(own))
    holder = await wait_until(
        lambda: db.fetchval(HOLDER, topology.events_exchange), 30, "a relay to hold the lock"
    )
    # The session holding this outbox's lock is killed, as when its replica's host dies.
    assert await db.fetchval("SELECT pg_terminate_backend($1)", holder)

    async def new_holder() -> bool:
        pid = await db.fetchval(HOLDER, topology.events_exchange)
        return pid is not None and pid != holder

    await wait_until(new_holder, 30, "another session to take the lock")
    await write_rows(db, topology.events_exchange, [event("offer.created", "x")])
    await wait_until(lambda: ("offer.created", "x") in tap.seen, 30, "the event written after the kill")


async def test_an_event_written_through_the_standby_replica_is_published_by_the_active_one_at_once(
    aiohttp_client, own: Settings, tap: Tap, make_user, monkeypatch
):
    # No polling at all: only the notification sent with the row can wake the active relay.
    monkeypatch.setattr(outbox, "POLL_SECONDS", 3600.0)
    replicas = [await aiohttp_client(create_app(own)) for _ in range(2)]
    await wait_until(lambda: any(r.app[RELAY].active for r in replicas), 30, "one relay to be active")
    standby = next(r for r in replicas if not r.app[RELAY].active)
    seller = await make_user("seller")
    resp = await standby.post("/v1/offer", json={"title": "lot", "bid_price": 3}, headers=seller.headers)
    assert resp.status == 201
    offer_id = (await resp.json())["id"]
    await wait_until(lambda: ("offer.created", offer_id) in tap.seen, 30, "the standby's offer.created")
