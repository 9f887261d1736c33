"""Transactional outbox: events written with the business row, published by a relay with confirms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from aiohttp import web

from .broker import PUBLISHER, Outgoing, Publisher
from .db import DB_POOL
from .events import Contract
from .jsonio import dumps, loads
from .observability.metrics import OUTBOX_BACKLOG, OUTBOX_LAG, OUTBOX_PUBLISHED
from .observability.tracing import carried
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
# A row whose publish fails in a way no outage explains is tried this often, then set aside: one bad
# row must not hold back every event behind it for good.
STRIKES = 3
# The advisory lock that makes one relay per outbox (exchange) the active one; the prefix keeps it
# apart from any other advisory lock taken in the same database.
LOCK_KEY = "hashtextextended('auction_shared.outbox:' || $1, 0)"
# Writers notify here (the payload is the exchange) so the active relay, which may run in another
# replica than the writer, publishes at once instead of at its next poll.
NOTIFY_CHANNEL = "auction_outbox"


class MalformedRow(ValueError):
    """An outbox row that no retry can publish."""


async def add_event(conn: asyncpg.Connection, event: Contract, exchange: str) -> None:
    """Call inside the transaction that writes the row the event tells about.

    The notification reaches the active relay at commit, whichever replica wrote the row."""
    await conn.execute(
        "WITH added AS (INSERT INTO outbox (exchange, routing_key, body, headers)"
        " VALUES ($1, $2, $3, $4::jsonb) RETURNING exchange)"
        f" SELECT pg_notify('{NOTIFY_CHANNEL}', exchange) FROM added",
        exchange,
        event.routing_key,
        event.encode(),
        # With the request's id and trace context: the relay publishes it later, from no request.
        dumps({**event.headers(), **carried()}).decode(),
    )


def _outgoing(row: asyncpg.Record) -> Outgoing:
    """The message an outbox row holds; MalformedRow (a ValueError) if no retry can publish it."""
    body = bytes(row["body"])
    event = loads(body)
    if not isinstance(event, dict) or "id" not in event:
        raise MalformedRow("the body is not an event with an id")
    headers = loads(row["headers"]) if row["headers"] else None
    if headers is not None and not isinstance(headers, dict):
        raise MalformedRow("the headers are not an object")
    # Not mandatory: an event nobody subscribes to yet is not an error. The headers carry the
    # writer's request id and trace context, stored with the row.
    return Outgoing(row["routing_key"], body, str(event["id"]), headers, mandatory=False)


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them once the broker confirmed them.

    One relay per outbox publishes at a time: the one holding a PostgreSQL advisory lock keyed on the
    outbox's exchange, on the connection it publishes over. Two relays taking different rows at once
    (two offers replicas) would let an offer's offer.sold overtake its offer.created. The others try
    the lock every POLL_SECONDS, so one takes over within a second of the holder's session ending.

    Delivery is at least once: a crash between the confirm and the delete publishes a row again,
    and consumers drop the copy by the event id. A row that cannot be published (a body that is not
    an event, headers the broker cannot carry) moves to `outbox_dead` with its reason.
    """

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher) -> None:
        self._pool = pool
        self._publisher = publisher
        self.exchange = publisher.exchange_name
        self._wake = asyncio.Event()
        self._strikes: dict[int, int] = {}
        # True while this relay holds the lock and publishes (tests and logs look at it).
        self.active = False

    async def add(self, conn: asyncpg.Connection, event: Contract) -> None:
        """Record `event` for this relay's exchange, in the caller's transaction."""
        await add_event(conn, event, self.exchange)

    async def add_all(self, conn: asyncpg.Connection, events: Sequence[Contract]) -> None:
        """Record `events` in this order, in one statement, in the caller's transaction."""
        if not events:
            return
        # With the request's id and trace context, as `add_event` does: the same for every event of
        # this call, so each distinct set of headers is encoded once.
        extra = carried()
        encoded: dict[tuple[tuple[str, Any], ...], str] = {}
        headers = []
        for event in events:
            own = event.headers()
            key = tuple(own.items())
            if key not in encoded:
                encoded[key] = dumps({**own, **extra}).decode()
            headers.append(encoded[key])
        await conn.execute(
            "INSERT INTO outbox (exchange, routing_key, body, headers)"
            " SELECT $1, routing_key, body, headers::jsonb"
            " FROM unnest($2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY AS e(routing_key, body, headers, n)"
            " ORDER BY n",
            self.exchange,
            [e.routing_key for e in events],
            [e.encode() for e in events],
            headers,
        )
        # Wake the active relay at commit, whichever process holds the lock (as add_event does): else
        # the events of a relay-less writer (the worker, when an offers replica leads) wait for a poll.
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, self.exchange)

    def wake(self) -> None:
        self._wake.set()

    def _notified(self, conn: object, pid: int, channel: str, exchange: object) -> None:
        if exchange == self.exchange:
            self._wake.set()

    async def relay_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch over `conn` (holding the relay lock); return how many rows it handled."""
        failure: BaseException | None = None
        done: list[int] = []
        dead: list[tuple[int, str]] = []
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT id, routing_key, body, headers::text AS headers,"
                " now() - created_at AS age FROM outbox WHERE exchange = $1 ORDER BY id LIMIT $2",
                self.exchange,
                BATCH,
            )
            if rows:
                OUTBOX_LAG.set(rows[0]["age"].total_seconds())
            # The whole batch in flight at once, in id order: the publisher writes publishes in the
            # order they are made and the channel keeps it, so confirms pipeline and the order holds.
            # Waiting for each confirm in turn capped the relay at one round trip per event.
            outcomes: list[BaseException | None] = [None] * len(rows)
            outgoing: list[Outgoing] = []
            placed: list[int] = []
            for index, row in enumerate(rows):
                try:
                    outgoing.append(_outgoing(row))
                    placed.append(index)
                except ValueError as exc:
                    outcomes[index] = exc
            for index, outcome in zip(placed, await self._publisher.publish_all(outgoing)):
                outcomes[index] = outcome
            for row, outcome in zip(rows, outcomes):
                if outcome is not None:
                    if isinstance(outcome, _WAITS_ON):
                        # An outage: this row and the rest wait for the next pass (the consumers
                        # drop by event id any copy that went out all the same).
                        failure = outcome
                        break
                    reason = self._strike(row["id"], outcome) if isinstance(outcome, Exception) else None
                    if reason is None:
                        failure = outcome
                        break
                    dead.append((row["id"], reason))
                done.append(row["id"])
            if dead:
                log.error("outbox rows set aside in outbox_dead: %s", dead)
                await conn.executemany(
                    "INSERT INTO outbox_dead (id, exchange, routing_key, body, headers, reason)"
                    " SELECT id, exchange, routing_key, body, headers, $2 FROM outbox WHERE id = $1",
                    dead,
                )
            # What went out (or aside) before a failure is not sent again.
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", done)
        OUTBOX_PUBLISHED.inc(len(done) - len(dead))
        if failure is not None:
            raise failure
        return len(done)

    def _strike(self, row_id: int, exc: Exception) -> str | None:
        """The reason to set the row aside now, or None to try it again later."""
        if isinstance(exc, ValueError):
            return repr(exc)  # its own bytes are at fault (MalformedRow, bad JSON): no retry helps
        self._strikes[row_id] = self._strikes.get(row_id, 0) + 1
        if self._strikes[row_id] < STRIKES:
            return None
        del self._strikes[row_id]
        return f"failed {STRIKES} times: {exc!r}"

    async def measure_backlog(self, conn: asyncpg.Connection) -> None:
        """The rows still waiting (this relay's exchange), for the backlog gauge; once per pass."""
        waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE exchange = $1", self.exchange)
        OUTBOX_BACKLOG.set(waiting)
        if not waiting:
            OUTBOX_LAG.set(0)

    async def _lead(self, backoff: Backoff) -> None:
        """Publish for as long as this relay holds the outbox's lock; return at once if another does."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            if not await conn.fetchval(f"SELECT pg_try_advisory_lock({LOCK_KEY})", self.exchange):
                return
            log.info("outbox relay for %s is the active one", self.exchange)
            self.active = True
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            try:
                while True:
                    while await self.relay_once(conn) == BATCH:
                        pass
                    await self.measure_backlog(conn)
                    backoff.reset()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
                    except asyncio.TimeoutError:
                        pass
                    self._wake.clear()
            finally:
                self.active = False
                # Returning the connection to the pool also unlocks and unlistens (asyncpg resets it
                # with pg_advisory_unlock_all and UNLISTEN *); a dead session's lock went with it.
                with contextlib.suppress(*_WAITS_ON):  # a dead session has nothing left to unlisten
                    await conn.remove_listener(NOTIFY_CHANNEL, self._notified)

    async def run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._lead(backoff)
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
            # Another relay holds the lock: try again shortly, it may be gone by then.
            await asyncio.sleep(POLL_SECONDS)


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
