"""Transactional outbox: events written with the business row, published by a relay with confirms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from .broker import PUBLISHER, Publisher
from .db import DB_POOL
from .events import Contract
from .jsonio import dumps, loads
from .observability.metrics import OUTBOX_BACKLOG, OUTBOX_LAG, OUTBOX_PUBLISHED
from .observability.tracing import carried, continuing
from .outages import DATABASE_REFUSED
from .problems import DependencyDown
from .retry import Backoff

log = logging.getLogger(__name__)

BATCH = 200
# Rows written by another replica (or left by a failed publish) are picked up within this time.
POLL_SECONDS = 1.0
# A relay that waits on an exhausted or unreachable pool gives up and retries rather than hang.
ACQUIRE_TIMEOUT = 10.0
# The relay waits and tries again while the broker refuses (DependencyDown) or the database does.
_WAITS_ON: tuple[type[BaseException], ...] = (DependencyDown, *DATABASE_REFUSED)


async def add_event(conn: asyncpg.Connection, event: Contract, exchange: str) -> None:
    """Call inside the transaction that writes the row the event tells about."""
    await conn.execute(
        "INSERT INTO outbox (exchange, routing_key, body, headers) VALUES ($1, $2, $3, $4::jsonb)",
        exchange,
        event.routing_key,
        event.encode(),
        # With the request's id and trace context: the relay publishes it later, from no request.
        dumps({**event.headers(), **carried()}).decode(),
    )


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them once the broker confirmed them.

    Delivery is at least once: a crash between the confirm and the delete publishes a row again,
    and consumers drop the copy by the event id.
    """

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher) -> None:
        self._pool = pool
        self._publisher = publisher
        self.exchange = publisher.exchange_name
        self._wake = asyncio.Event()

    async def add(self, conn: asyncpg.Connection, event: Contract) -> None:
        """Record `event` for this relay's exchange, in the caller's transaction."""
        await add_event(conn, event, self.exchange)

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows were sent."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
            # SKIP LOCKED: replicas of a service share the table without sending a row twice.
            rows = await conn.fetch(
                "SELECT id, routing_key, body, headers::text AS headers,"
                " now() - created_at AS age FROM outbox WHERE exchange = $1"
                " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                self.exchange,
                BATCH,
            )
            if not rows:
                return 0
            OUTBOX_LAG.set(rows[0]["age"].total_seconds())
            for row in rows:
                # Awaiting in turn keeps the order; the batch rarely holds more than a few rows.
                body = bytes(row["body"])
                headers = loads(row["headers"]) if row["headers"] else None
                # Not mandatory: an event nobody subscribes to yet is not an error.
                with continuing(headers):
                    await self._publisher.publish(
                        row["routing_key"],
                        body,
                        message_id=str(loads(body)["id"]),
                        headers=headers,
                        mandatory=False,
                    )
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def measure_backlog(self) -> None:
        """The rows still waiting (this relay's exchange), for the backlog gauge; once per pass."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE exchange = $1", self.exchange)
        OUTBOX_BACKLOG.set(waiting)
        if not waiting:
            OUTBOX_LAG.set(0)

    async def run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                while await self.relay_once() == BATCH:
                    pass
                await self.measure_backlog()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except _WAITS_ON as exc:
                log.warning("outbox relay waits %.1fs: %r", backoff.delay, exc)
                await backoff.wait()
                continue
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(1.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()


RELAY = web.AppKey("outbox_relay", OutboxRelay)


def outbox_relay() -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context (after the database and broker ones): runs the relay in the background."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        relay = OutboxRelay(app[DB_POOL], app[PUBLISHER])
        app[RELAY] = relay
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    return ctx
