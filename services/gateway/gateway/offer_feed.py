"""This replica's own queue of live events (`offer.*` and its users' `user.<id>`), deduplicated and
handed to the hub in order."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiohttp import WSCloseCode, web

from auction_shared.broker import Topology, connect, declare_events_exchange
from auction_shared.config import Settings
from auction_shared.events import MalformedEvent, decode
from auction_shared.outages import BROKER_CHANNEL_LOST, BROKER_UNREACHABLE, broker_is_up
from auction_shared.retry import Backoff, retry

from .deliver import deliver
from .hub import HUB, Hub
from .user_check import USERS, UserCheck
from .user_routes import UserRoutes

log = logging.getLogger(__name__)

# Unacked events the broker may push ahead of the hub: bounds what waits in this process.
PREFETCH = 1000
# Ack with multiple=True every this many events (and whenever the inbox runs dry): one frame, not 100.
ACK_EVERY = 100
# The outbox delivers at least once; a copy arrives close behind the original, so a window suffices.
RECENT_EVENT_IDS = 10_000
# If this replica stalls, the broker keeps at most this many of its events (oldest dropped first):
# a live view has no use for a backlog it could never catch up on.
QUEUE_MAX_LENGTH = 100_000
# How long the queue outlives its replica's connection: a reconnect within this time finds the events
# published meanwhile (an outbox relay may publish them before this replica is back); a replica gone
# for good leaves nothing behind once it passes.
QUEUE_EXPIRES_MS = 120_000
RETRY_SECONDS = 1.0


class RecentIds:
    """The last `size` event ids seen, to drop a redelivered copy."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class OfferFeed:
    """Consumes the offer events and its users' private events and fans them out through the hub.

    Each replica has its own queue, so every replica sees every event once. The connection is robust:
    after a reconnect aio-pika declares the same queue, binds and consumes again, and the events
    published while the connection was down are still in it (not exclusive, not auto-delete: it
    expires QUEUE_EXPIRES_MS after its last consumer went away). Copies are dropped by event id.
    The `user.<id>` bindings follow the users connected here (user_routes.py).
    """

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self._settings = settings
        self._topology = Topology.from_settings(settings)
        self._hub = hub
        self.routes = UserRoutes(hub.sockets_of, settings.dependency_timeout)
        hub.on_user_change = self.routes.settle
        self.queue_name = f"{self._topology.prefix}.gateway.{uuid.uuid4().hex[:12]}"
        self._recent = RecentIds(RECENT_EVENT_IDS)
        # Bounded by PREFETCH: the broker sends no more until we ack.
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._connection: AbstractRobustConnection | None = None
        # Held here on purpose: the robust connection keeps its channels only weakly, and restores
        # after a reconnect only the channels still alive.
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        # True while the queue is declared, bound and consumed: from the first subscribe until the
        # connection drops, and again once aio-pika has restored the channel after a reconnect.
        self._subscribed = False
        self.resubscribed = 0  # how many times a reconnect restored the subscription
        self._unacked = 0

    def is_up(self) -> bool:
        return self._subscribed and self._connection is not None and broker_is_up(self._connection)

    async def run(self) -> None:
        """Connect (waiting for RabbitMQ as long as it takes), then hand events to the hub forever."""
        await retry(
            self._subscribe,
            on=BROKER_UNREACHABLE,
            backoff=Backoff(RETRY_SECONDS, RETRY_SECONDS),
            waiting=lambda exc, _: log.warning("live updates wait for RabbitMQ: %r", exc),
        )
        log.info("live updates: consuming offer.* on %s", self.queue_name)
        while True:
            message = await self._inbox.get()
            try:
                self.dispatch(message.body, message.routing_key or "")
            except Exception:  # one bad event must not stop the live updates of every socket
                log.exception("live updates: could not dispatch event %s", message.message_id)
            await self._ack(message)
            # Let the watchers' writers flush this event before the next one is queued to them,
            # so a burst from the broker is not mistaken for a slow client.
            await asyncio.sleep(0)

    async def _subscribe(self) -> None:
        try:
            await self._declare_and_consume()
        except BROKER_UNREACHABLE:
            await self._close_connection()
            raise

    async def _declare_and_consume(self) -> None:
        self._connection = await connect(self._settings, attempts=1)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        events = await declare_events_exchange(channel, self._topology)
        queue = await channel.declare_queue(
            self.queue_name,
            # An exclusive or auto-delete queue would die with the connection, and the events that
            # an outbox relay publishes before this replica reconnects would never reach its sockets.
            arguments={
                "x-max-length": QUEUE_MAX_LENGTH,
                "x-overflow": "drop-head",
                "x-expires": QUEUE_EXPIRES_MS,
            },
        )
        await queue.bind(events, routing_key="offer.*")
        self._consumer_tag = await queue.consume(self._on_message)
        self._channel = channel
        self._queue = queue
        self._connection.close_callbacks.add(self._on_lost)
        self._connection.reconnect_callbacks.add(self._on_restored)
        self._subscribed = True
        self.routes.attach(queue, events)

    def _on_lost(self, *_: object) -> None:
        if self._subscribed:
            log.warning("live updates: lost RabbitMQ; its queue keeps the events until it reconnects")
        self._subscribed = False

    def _on_restored(self, *_: object) -> None:
        log.info("live updates: reconnected; %s declared, bound and consumed again", self.queue_name)
        self._subscribed = True
        self.resubscribed += 1
        self.routes.settle_all()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aiormq runs one task per delivery, in delivery order; queueing before any await keeps it.
        self._inbox.put_nowait(message)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        self._unacked += 1
        if self._unacked < ACK_EVERY and not self._inbox.empty():
            return
        self._unacked = 0
        try:
            await message.ack(multiple=True)
        except BROKER_CHANNEL_LOST as exc:
            # The channel it came on is gone: the broker hands these events out again after the
            # reconnect, and the recent event ids drop the copies.
            log.info("live updates: ack skipped after a reconnect: %r", exc)

    def dispatch(self, body: bytes, routing_key: str) -> None:
        """One event to the watchers it concerns, serialised once."""
        try:
            event = decode(body)
        except MalformedEvent as exc:
            log.warning("live updates: dropping a malformed event: %s", exc)
            return
        if self._recent.first_time(event.event_id):
            deliver(self._hub, event, routing_key)

    async def close(self) -> None:
        await self.routes.close()
        if self._queue is not None and self.is_up():
            try:  # leaving for good: nobody will read this replica's queue again
                if self._consumer_tag is not None:
                    await self._queue.cancel(self._consumer_tag)  # else the broker cancels it, noisily
                await self._queue.delete(if_unused=False, if_empty=False)
            except Exception as exc:
                log.info(
                    "live updates: could not delete %s (it expires on its own): %r", self.queue_name, exc
                )
        await self._close_connection()

    async def _close_connection(self) -> None:
        self._subscribed = False
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                await connection.close()
            except Exception as exc:  # closing a half-open connection must not stop the shutdown
                log.info("live updates: closing the broker connection: %r", exc)


FEED = web.AppKey("offer_feed", OfferFeed)


def live_updates(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the hub, and the feed that fills it (connecting in the background, so the
    HTTP API serves even while RabbitMQ is down; /health says so)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hub = Hub()
        feed = OfferFeed(settings, hub)
        app[HUB] = hub
        app[FEED] = feed
        app[USERS] = UserCheck(settings.known_user_ttl_seconds)
        task = asyncio.create_task(feed.run(), name="offer-feed")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await feed.close()

    return ctx


async def close_watchers(app: web.Application) -> None:
    """on_shutdown: every socket gets 1001 before the server waits for its handlers to end."""
    app[HUB].close_all(WSCloseCode.GOING_AWAY, "server shutting down")


async def feed_is_up(app: web.Application) -> bool:
    return app[FEED].is_up()
