"""This replica's private routes: its queue bound to `user.<id>` for each user with a socket here.

Private events (a bidder's `bidUpdated`, a seller's own `offerSold`/`offerEnded`) are published with
the routing key `user.<id>`. A replica binds that key when a user's first socket authenticates on it
and unbinds it when the user's last socket here goes, so the broker sends each private event only to
the replicas that hold a socket of its user, and each of those hands it to every such socket.

One task per user brings the broker's bindings in line with the hub, one call at a time, so a user
who leaves and comes back while a call is under way ends bound (or not) as the hub says last. The
queue is aio-pika's robust queue: it re-declares every binding it made when the connection comes
back (and the queue outlives a short outage anyway). A call that failed, or could not be made while
the connection was down, is retried until it succeeds, and once more after every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from aio_pika.abc import AbstractExchange, AbstractQueue

from auction_shared.events import private_key
from auction_shared.outages import BROKER_CHANNEL_LOST
from auction_shared.retry import Backoff

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class UserRoutes:
    """Keeps the queue's `user.<id>` bindings equal to the users with a socket here (`sockets_of`)."""

    def __init__(self, sockets_of: Callable[[uuid.UUID], int], timeout: float) -> None:
        self._sockets_of = sockets_of
        self._timeout = timeout
        self._queue: AbstractQueue | None = None
        self._exchange: AbstractExchange | None = None
        self._bound: set[uuid.UUID] = set()  # the broker confirmed these bindings
        self._doubtful: set[uuid.UUID] = set()  # a call on these failed midway: bound or not, unknown
        self._early: set[uuid.UUID] = set()  # arrived before the queue existed
        self._settling: dict[uuid.UUID, asyncio.Task[None]] = {}

    @property
    def bound(self) -> frozenset[uuid.UUID]:
        return frozenset(self._bound)

    def attach(self, queue: AbstractQueue, exchange: AbstractExchange) -> None:
        """The feed's queue exists (first subscribe): bind every user who arrived before it."""
        self._queue, self._exchange = queue, exchange
        self.settle_all()

    def settle_all(self) -> None:
        """After a reconnect, redo whatever failed while the connection was down."""
        early, self._early = self._early, set()
        for user_id in {*self._bound, *self._doubtful, *early}:
            self.settle(user_id)

    def settle(self, user_id: uuid.UUID) -> None:
        """The hub says the user's first socket came or its last one left (hub.on_user_change)."""
        if user_id not in self._settling:
            self._settling[user_id] = asyncio.create_task(self._converge(user_id), name=f"route-{user_id}")

    async def ready(self, user_id: uuid.UUID) -> bool:
        """Wait (at most the timeout) until the user's binding is in place; False if it is not yet."""
        task = self._settling.get(user_id)
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._timeout)
            except asyncio.TimeoutError:
                pass
        return user_id in self._bound

    async def _converge(self, user_id: uuid.UUID) -> None:
        backoff = Backoff(RETRY_SECONDS, RETRY_SECONDS)
        try:
            while True:
                want = self._sockets_of(user_id) > 0
                if want and user_id in self._bound:
                    return
                if not want and user_id not in self._bound and user_id not in self._doubtful:
                    return
                if self._queue is None or self._exchange is None:
                    self._early.add(user_id)  # attach() settles it once the queue exists
                    return
                if await self._call(user_id, bind=want):
                    continue
                await backoff.wait()
        finally:
            self._settling.pop(user_id, None)

    async def _call(self, user_id: uuid.UUID, *, bind: bool) -> bool:
        assert self._queue is not None and self._exchange is not None
        key = private_key(user_id)
        self._doubtful.add(user_id)
        try:
            if bind:
                await asyncio.wait_for(self._queue.bind(self._exchange, key), self._timeout)
                self._bound.add(user_id)
            else:
                await asyncio.wait_for(self._queue.unbind(self._exchange, key), self._timeout)
                self._bound.discard(user_id)
        except BROKER_CHANNEL_LOST as exc:
            # On a dropped connection the robust channel waits for its restore, hence the timeout.
            log.warning("live updates: could not %s %s: %r", "bind" if bind else "unbind", key, exc)
            return False
        self._doubtful.discard(user_id)
        return True

    async def close(self) -> None:
        tasks = list(self._settling.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
