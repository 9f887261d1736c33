"""Intake's pending rows, written in groups: one statement for every bid that arrived meanwhile.

A bid is recorded `pending` before it is published (intake.py says why). Written one autocommitted
insert per bid, that record was the largest cost of intake after the publish itself: a round trip, a
commit and a WAL flush for every bid. Here the first bid is written at once, alone, and every bid that
arrives while a write is in flight waits for the next write, which takes them all in one statement:
at low rates nothing waits longer than before, under load the commits are shared (group commit).

The rows are written on connections with `synchronous_commit = off`: a write returns at its commit,
without waiting for the WAL flush (the bid's durable copy is the broker's, confirmed before the
202). A PostgreSQL crash can lose the last fraction of a second of pending rows: those bids are
then not readable until the worker writes their rows from the queue, as for a bid whose record
failed. Idempotency-Keys and everything else stay on synchronous commits.

One write is in flight at a time per process. A failed write fails every bid of its group; each
caller decides what that means (intake logs it and queues the bid all the same).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from auction_shared.events import BidPlaced

from . import store

log = logging.getLogger(__name__)

# A group is one INSERT of this many rows at most; the rest wait for the next write.
MAX_GROUP = 1000


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pending pool's reset: none. asyncpg's default sends a reset query (RESET ALL, UNLISTEN,
    CLOSE ALL, advisory unlocks) each time a connection goes back to the pool, a second round trip
    for every write; this pool's only statement is record_pending's INSERT, which leaves nothing
    to reset. An open transaction is still rolled back (asyncpg does that before calling this)."""


class HeldConnection:
    """One of the pool's connections, kept between statements for a writer that runs one at a time.

    `pool.execute` acquires a connection and releases it for every statement: about 40 µs of this
    process's CPU per write on the bench machine (a micro-benchmark: 190 µs per INSERT through the
    pool against 150 µs on a connection held). The pending writer sends one statement at a time, so
    it keeps one connection instead. A statement the database refuses leaves the connection as it
    was; anything else (the connection lost, a timeout, a cancellation) terminates it, and the next
    statement takes a fresh one from the pool. A statement sent while another is in flight goes
    through the pool as before."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._held: asyncpg.Connection | None = None
        self._busy = False

    async def execute(self, query: str, *args: object) -> str:
        if self._busy:
            return str(await self._pool.execute(query, *args))
        self._busy = True
        try:
            if self._held is None:
                self._held = await self._pool.acquire()
            try:
                return str(await self._held.execute(query, *args))
            except BaseException as exc:
                if not _still_usable(self._held, exc):
                    await self._drop(terminate=True)
                raise
        finally:
            self._busy = False

    async def close(self) -> None:
        """Give the connection back (before the pool closes: it waits for every connection)."""
        await self._drop(terminate=False)

    async def _drop(self, *, terminate: bool) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        try:
            if terminate:
                held.terminate()  # its state is unknown: the pool opens a new one in its place
            await self._pool.release(held)
        except asyncpg.InterfaceError:
            pass  # the pool took it back already, when the connection closed


def _still_usable(held: asyncpg.Connection, exc: BaseException) -> bool:
    """Whether a connection whose statement raised `exc` can take the next one: only when the
    database refused the statement itself (a constraint, say), not when the connection was lost, the
    server shut it down, a timeout or a cancellation cut the statement short."""
    if not isinstance(exc, asyncpg.PostgresError) or isinstance(
        exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    ):
        return False
    try:
        return not held.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when it closed
        return False


def _expire(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_exception(TimeoutError("the pending row was not written in time"))


class PendingRecords:
    def __init__(self, pool: store.Executes) -> None:
        self._pool = pool
        self._waiting: list[tuple[BidPlaced, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, bid: BidPlaced, timeout: float | None = None) -> None:
        """Return once the bid's pending row is committed (or raise the write's error); with a
        `timeout`, raise TimeoutError once that many seconds passed (the write goes on)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((bid, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="pending-records")
        # Each bid has a future of its own: a caller that stops waiting (its timeout, or its
        # cancellation, which cancels this future) leaves the others' write alone; the writer
        # settles only futures not done yet. A timer rather than asyncio.timeout + shield, which
        # cost more than the rest of this method.
        expiry = None if timeout is None else loop.call_later(timeout, _expire, done)
        try:
            await done
        finally:
            if expiry is not None:
                expiry.cancel()

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            if len(group) > 1 and not await self._write(group, alone=False):
                # One bid's row may be what the database refused: the others must not pay for it.
                for one in group:
                    await self._write([one], alone=True)
            elif len(group) == 1:
                await self._write(group, alone=True)

    async def _write(self, group: list[tuple[BidPlaced, asyncio.Future[None]]], *, alone: bool) -> bool:
        """Write the group's rows; settle its callers unless a failed group is to be retried alone."""
        try:
            await store.record_pending(self._pool, [bid for bid, _ in group])
        except Exception as exc:
            if not alone:
                log.warning("pending rows of %d bids not written together (%r); one by one", len(group), exc)
                return False
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
                    done.exception()  # retrieved: a caller that gave up waiting never reads it
            return True
        for _, done in group:
            if not done.done():
                done.set_result(None)
        return True

    async def close(self) -> None:
        """Let the write in flight finish (the app is stopping)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
