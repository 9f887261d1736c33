"""Each service runs as its own PostgreSQL role and RabbitMQ user, with exactly what its job needs:
the whole auction works with them, and each is refused outside its grants (no DDL at all)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aio_pika
import aiohttp
import aiormq
import asyncpg
import pytest

from auction_shared import broker
from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.db_roles import TABLE_PRIVILEGES
from tests.security.least_privilege import Accounts, service_accounts
from tests.support.inprocess import url_of
from tests.support.waiting import wait_until
from tests.support.watch import Watch

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture
async def accounts(settings: Settings) -> AsyncIterator[Accounts]:
    async with service_accounts(settings) as made:
        yield made


def granted(service: str, table: str) -> set[str]:
    """Table-wide privileges TABLE_PRIVILEGES gives `service` on `table` (column grants aside)."""
    spec = TABLE_PRIVILEGES[table].get(service, "")
    return {p.strip() for p in spec.split(",") if p.strip() and "(" not in p}


async def test_every_table_has_its_line_and_each_role_holds_exactly_it(
    settings: Settings, accounts: Accounts
) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == set(TABLE_PRIVILEGES), "a table without its line in db_roles.TABLE_PRIVILEGES"
        for service, role in accounts.database_roles.items():
            for table in tables:
                held = {
                    p
                    for p in PRIVILEGES
                    if await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", role, table, p)
                }
                assert held == granted(service, table), (service, table)
            # No role owns anything or may create anything.
            assert not await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'CREATE')", role)
            assert not await conn.fetchval(
                "SELECT has_database_privilege($1, current_database(), 'TEMPORARY')", role
            )
            assert not await conn.fetchval(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1", role
            )
        # offers and bids see that a user exists, never a password hash.
        for service in ("offers", "bids"):
            role = accounts.database_roles[service]
            assert await conn.fetchval("SELECT has_column_privilege($1, 'users', 'id', 'SELECT')", role)
            assert not await conn.fetchval(
                "SELECT has_column_privilege($1, 'users', 'password_hash', 'SELECT')", role
            )
    finally:
        await conn.close()


# Statements each role must be refused: DDL for all, then reads and writes outside its job.
REFUSED: dict[str, list[str]] = {
    "auth": ["SELECT * FROM offers", "SELECT * FROM bids", "DELETE FROM users", "SELECT * FROM outbox"],
    "offers": [
        "SELECT password_hash FROM users",
        "DELETE FROM offers",
        "INSERT INTO bids (id) VALUES (gen_random_uuid())",
        "SELECT * FROM login_attempts",
    ],
    "bids": [
        "UPDATE offers SET sold = true",
        "UPDATE bids SET status = 'accepted'",
        "SELECT username FROM users",
        "DELETE FROM outbox",
    ],
    "bid-worker": [
        "SELECT * FROM users",
        "DELETE FROM bids",
        "INSERT INTO offers (id) VALUES (gen_random_uuid())",
        "SELECT * FROM bid_requests",
    ],
}
DDL = [
    "CREATE TABLE intruder (id int)",
    "CREATE TEMP TABLE intruder (id int)",
    "ALTER TABLE offers ADD COLUMN intruder int",
    "DROP TABLE bids",
    "TRUNCATE outbox",
    "CREATE INDEX intruder ON users (password_hash)",
]


@pytest.mark.parametrize("service", sorted(REFUSED))
async def test_each_database_role_is_refused_outside_its_grants(accounts: Accounts, service: str) -> None:
    conn = await asyncpg.connect(accounts.of(service).database_url)
    try:
        for statement in [*DDL, *REFUSED[service]]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    return None


async def refused(url: str, action: Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]) -> bool:
    """True if the broker refuses `action` (403 ACCESS_REFUSED) to the user of `url`."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await action(channel)
        except aiormq.exceptions.ChannelAccessRefused:
            return True
        return False
    finally:
        await connection.close()


async def test_each_broker_user_is_refused_outside_its_job(accounts: Accounts, settings: Settings) -> None:
    names = Topology.from_settings(accounts.base)
    other = Topology(prefix=f"{accounts.base.amqp_prefix}x", bid_shards=names.bid_shards)
    # The pipeline exists, as the bids service would have declared it.
    url = {s: accounts.of(s).amqp_url for s in accounts.broker_users}
    assert not await refused(url["bids"], lambda ch: broker.declare_bid_pipeline(ch, names))

    async def consume_shard(ch: aio_pika.abc.AbstractChannel) -> None:
        queue = await ch.declare_queue(names.shard_queue(0), passive=True)
        await queue.consume(ignore)

    async def publish_event(ch: aio_pika.abc.AbstractChannel) -> None:
        events = await broker.declare_events_exchange(ch, names)
        await events.publish(aio_pika.Message(b"{}"), routing_key="offer.created")
        await ch.close()  # an unconfirmed publish is refused on the channel's next round trip

    async def declare_queue(ch: aio_pika.abc.AbstractChannel, name: str) -> None:
        await ch.declare_queue(name, auto_delete=True)

    assert await refused(url["offers"], consume_shard)
    assert await refused(url["offers"], lambda ch: declare_queue(ch, f"{names.prefix}.gateway.abc123"))
    assert await refused(url["gateway"], consume_shard)
    assert await refused(
        url["gateway"],
        lambda ch: ch.declare_exchange(
            names.bids_exchange, "x-consistent-hash", durable=True, arguments={"hash-header": "offer_id"}
        ),
    )
    assert await refused(url["bids"], lambda ch: declare_queue(ch, f"{names.prefix}.gateway.abc123"))

    async def consume_dead(ch: aio_pika.abc.AbstractChannel) -> None:
        queue = await ch.declare_queue(names.dead_letter_queue, passive=True)
        await queue.consume(ignore)

    assert await refused(url["bids"], consume_dead)
    assert await refused(url["gateway"], consume_dead)
    assert not await refused(url["bid-worker"], consume_shard)
    assert await refused(url["bid-worker"], lambda ch: declare_queue(ch, f"{names.prefix}.gateway.abc123"))
    for service in url:
        # Nothing under another deployment's prefix.
        assert await refused(url[service], lambda ch: broker.declare_events_exchange(ch, other)), service


async def test_the_whole_auction_works_with_each_service_on_its_own_role_and_user(accounts: Accounts) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from auth.app import create_app as auth_app
    from bid_worker.settings import WorkerSettings
    from bid_worker.worker import BidWorker
    from bids.app import create_app as bids_app
    from gateway.app import create_app as gateway_app
    from offers.app import create_app as offers_app

    started: list[TestClient] = []
    worker = BidWorker(accounts.of("bid-worker"), WorkerSettings(worker_id="least-privilege"))
    try:
        urls = {}
        for name, factory in (("auth", auth_app), ("offers", offers_app), ("bids", bids_app)):
            client = TestClient(TestServer(factory(accounts.of(name)), host="127.0.0.1"))
            await client.start_server()
            started.append(client)
            urls[name] = url_of(client)
        gateway_settings = replace(
            accounts.of("gateway"), auth_url=urls["auth"], offers_url=urls["offers"], bids_url=urls["bids"]
        )
        gateway = TestClient(TestServer(gateway_app(gateway_settings), host="127.0.0.1"))
        await gateway.start_server()
        started.append(gateway)
        await worker.start()

        async def account(prefix: str) -> dict[str, str]:
            creds = {"username": f"{prefix}_{uuid.uuid4().hex[:8]}", "password": "pw-" + uuid.uuid4().hex[:6]}
            assert (await gateway.post("/v1/signup", json=creds)).status == 201
            resp = await gateway.post("/v1/login", json=creds)
            assert resp.status == 200
            return {"Authorization": f"Bearer {(await resp.json())['token']}"}

        seller, bidder = await account("seller"), await account("bidder")
        resp = await gateway.post("/v1/offer", json={"title": "vase", "bid_price": 10}, headers=seller)
        assert resp.status == 201, await resp.text()
        offer = await resp.json()
        async with aiohttp.ClientSession() as session:
            watch = await Watch.open(session, url_of(gateway), seller["Authorization"].split()[1])
            await watch.request("subscribe", "subscribed", offer_id=offer["id"])
            resp = await gateway.post(
                "/v1/bid", json={"offer_id": offer["id"], "bid_price": 12}, headers=bidder
            )
            assert resp.status == 202, await resp.text()
            bid = await resp.json()
            updated = await watch.until(lambda f: f["event"] == "offerUpdated")
            assert updated["data"]["highest_bid_id"] == bid["id"]

            async def leading() -> bool:
                r = await gateway.get(f"/v1/bid/{bid['id']}", headers=bidder)
                return r.status == 200 and (await r.json())["status"] == "leading"

            await wait_until(leading, timeout=30, what="the bid applied as leading")
            resp = await gateway.put(f"/v1/bid/{bid['id']}", headers=seller)
            assert resp.status == 200, await resp.text()
            sold = await watch.until(lambda f: f["event"] == "offerSold")
            assert sold["data"]["offer"]["id"] == offer["id"]
            await watch.ws.close()
    finally:
        await worker.stop()
        for client in reversed(started):
            await client.close()
