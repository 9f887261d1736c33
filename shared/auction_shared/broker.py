"""RabbitMQ: the robust connection as a cleanup context, the topology, and the one event publisher.

Over the usual module size on purpose: the names of every exchange and queue, their declaration and
the publisher that sends under them stay in one file, so a name is declared and used in one place;
the confirm bookkeeping is apart, in confirms.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)
from aiohttp import web
from pamqp.commands import Basic
from pamqp.common import FieldValue

from . import amqp_frames
from .config import Settings
from .confirms import ConfirmedChannel
from .events import Contract
from .observability import request_id
from .observability.metrics import published
from .observability.tracing import PUBLISHED_AT, inject_trace, published_at_now
from .outages import BROKER_CHANNEL_LOST, BROKER_UNREACHABLE, broker_is_up
from .problems import DependencyDown
from .retry import Backoff, retry

log = logging.getLogger(__name__)

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

# A message that keeps coming back (its worker crashed with it in hand, again and again) goes to the
# dead-letter queue after this many deliveries. Unparseable messages go there at once. RabbitMQ 3.x
# counts every return toward the limit, also the prefetched messages a worker gives back when it
# hands a shard on or dies: a bid near the head of a busy shard is returned once per hand-over. At
# 20 a day of redeploys could dead-letter a valid 202 bid; 200 leaves that to a message that really
# kills its worker again and again. It is a queue argument, fixed when the queue is first declared:
# see the README (Guarantees, "Delivery limit") for queues declared by an older release.
DELIVERY_LIMIT = 200


class _Named:
    """A name under the topology's prefix: `<prefix>.<suffix>`."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __get__(self, topology: Topology, owner: type[Topology]) -> str:
        return f"{topology.prefix}.{self.suffix}"


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue, derived from one prefix so test runs never collide."""

    prefix: str
    bid_shards: int

    events_exchange = _Named("events")
    bids_exchange = _Named("bids")
    dead_letter_exchange = _Named("dlx")
    dead_letter_queue = _Named("dead")
    # Bid-workers announce themselves here, to share the shards out between them.
    workers_exchange = _Named("workers")

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(prefix=settings.amqp_prefix, bid_shards=settings.bid_shards)

    def shard_queue(self, shard: int) -> str:
        return f"{self.prefix}.bids.shard.{shard:02d}"

    @property
    def shard_queues(self) -> list[str]:
        return [self.shard_queue(i) for i in range(self.bid_shards)]


async def declare_events_exchange(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    return await channel.declare_exchange(topology.events_exchange, ExchangeType.TOPIC, durable=True)


async def declare_bid_pipeline(channel: AbstractChannel, topology: Topology) -> list[AbstractQueue]:
    """Declare (idempotently) everything `bid.placed` flows through; return the shard queues.

    auction.events --bid.placed--> auction.bids (x-consistent-hash on the offer_id header)
    --> auction.bids.shard.NN (quorum, single active consumer) --poison--> auction.dlx --> auction.dead
    """
    events = await declare_events_exchange(channel, topology)
    dlx = await channel.declare_exchange(topology.dead_letter_exchange, ExchangeType.FANOUT, durable=True)
    dead = await channel.declare_queue(
        topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dlx, routing_key="")
    bids = await channel.declare_exchange(
        topology.bids_exchange,
        ExchangeType.X_CONSISTENT_HASH,
        durable=True,
        arguments={"hash-header": "offer_id"},
    )
    # Bids and every command for an offer (its close) reach the offer's shard, in publish order.
    await bids.bind(events, routing_key="bid.placed")
    await bids.bind(events, routing_key="command.#")
    shards = []
    for name in topology.shard_queues:
        queue = await _declare_shard_queue(
            channel,
            name,
            {
                "x-queue-type": "quorum",
                "x-single-active-consumer": True,
                "x-dead-letter-exchange": topology.dead_letter_exchange,
                "x-delivery-limit": DELIVERY_LIMIT,
            },
        )
        # Equal weights: every shard owns the same share of the hash ring.
        await queue.bind(bids, routing_key="1")
        shards.append(queue)
    return shards


async def _declare_shard_queue(
    channel: AbstractChannel, name: str, arguments: dict[str, FieldValue]
) -> AbstractQueue:
    """Declare a shard queue, or take it as it is when an older release declared it otherwise.

    Queue arguments cannot change once declared (RabbitMQ refuses the declaration), and a
    `delivery-limit` policy can only lower a limit set by argument, never raise it. A queue from
    before DELIVERY_LIMIT was raised keeps working with its old limit until an operator recreates it.
    """
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        log.warning(
            "shard queue %s keeps the arguments it was declared with (%s); recreate it to get a"
            " delivery limit of %d (README: Delivery limit)",
            name,
            exc.args[0] if exc.args else exc,
            DELIVERY_LIMIT,
        )
    if channel.is_closed:
        await channel.reopen()
    return await channel.declare_queue(name, passive=True)


async def dead_letter_depth(channel: AbstractChannel, topology: Topology) -> int:
    """Messages waiting in the dead-letter queue (ready ones: what nobody has looked at yet)."""
    queue = await channel.declare_queue(topology.dead_letter_queue, passive=True)
    count = queue.declaration_result.message_count
    return count if count is not None else 0


# How often a lost connection is retried once it was up.
RECONNECT_SECONDS = 1.0


async def connect(settings: Settings, *, attempts: int = 30) -> AbstractRobustConnection:
    """Open a robust connection (it reconnects and re-declares by itself once it is up)."""
    amqp_frames.install()  # a quicker frame reader beneath aiormq (amqp_frames.py says why)

    async def attempt() -> AbstractRobustConnection:
        # What aio_pika.connect_robust does, but holding the connection so a failed or cancelled first
        # connect can be closed: otherwise aio-pika's reconnect task outlives it (a service stopped
        # while it waits for RabbitMQ leaks a connection that keeps trying in the background).
        # aio-pika's default interval of 5 s keeps bid intake answering 503 that long after a blip.
        url = aio_pika.connection.make_url(settings.amqp_url, reconnect_interval=RECONNECT_SECONDS)
        connection = aio_pika.RobustConnection(url, reconnect_interval=RECONNECT_SECONDS)
        try:
            await connection.connect(timeout=settings.dependency_timeout)
        except BaseException:
            await connection.close()
            raise
        return connection

    return await retry(
        attempt,
        on=BROKER_UNREACHABLE,
        backoff=Backoff(0.2, 2.0),
        attempts=attempts,
        waiting=lambda exc, _: log.warning("waiting for RabbitMQ (%s)", exc),
    )


@dataclass(frozen=True)
class Outgoing:
    """One message of a `Publisher.publish_all` batch, encoded."""

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, FieldValue] | None = None
    mandatory: bool = False


def _retrieve(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


# What ends a publish_all batch early: its bound ran out, or the channel or connection went.
_PUBLISH_ALL_LOST: tuple[type[BaseException], ...] = (TimeoutError, *BROKER_CHANNEL_LOST)


class Publisher:
    """Publishes persistent messages to the events exchange and waits for the broker's confirm.

    Unroutable messages are returned by the broker and raise, so a confirm always means a queue has
    the message. Concurrent callers share one channel with no lock: a loop iteration's publishes
    leave in one write and their confirms pipeline (confirms.py says how their order is kept).
    """

    def __init__(self, connection: AbstractRobustConnection, topology: Topology, timeout: float):
        self._connection = connection
        self._topology = topology
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._confirmed: ConfirmedChannel | None = None
        self._reopening: asyncio.Lock = asyncio.Lock()

    @property
    def exchange_name(self) -> str:
        return self._topology.events_exchange

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_events_exchange(self._channel, self._topology)

    async def _reopen_if_lost(self) -> None:
        """A robust channel normally comes back with its connection; if it stayed closed while the
        connection is up again (its restore failed half-way), open a new one."""
        if not broker_is_up(self._connection) or (self._channel is not None and not self._channel.is_closed):
            return
        async with self._reopening:
            if self._channel is None or self._channel.is_closed:
                log.warning("publisher channel stayed closed after a reconnect: opening a new one")
                await self.open()

    async def close(self) -> None:
        if self._confirmed is not None:
            self._confirmed.close()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _current(self, channel: AbstractChannel) -> ConfirmedChannel:
        """The confirmed publisher of the channel's present underlying channel (new after a restore)."""
        underlying = await channel.get_underlay_channel()  # a robust channel waits for its reconnect
        confirmed = self._confirmed
        if confirmed is None or confirmed.channel is not underlying:
            if confirmed is not None:
                confirmed.close()
            confirmed = self._confirmed = ConfirmedChannel(cast(aiormq.Channel, underlying))
        return confirmed

    async def send(self, message: Contract) -> None:
        """Publish one contract with the routing key, headers and mandatory flag it owns."""
        await self.publish(
            message.routing_key,
            message.encode(),
            message_id=message.event_id,
            headers=message.headers(),
            mandatory=message.mandatory,
        )

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, FieldValue] | None = None,
        mandatory: bool = True,
    ) -> None:
        """Return once the broker has confirmed the message, else raise DependencyDown."""
        channel = self._channel
        if channel is None:
            raise DependencyDown("RabbitMQ")
        # When it entered the broker (a shard's lag), the request that caused it (the consumer logs
        # under it) and the trace context (`traceparent`), all in the message's headers.
        headers = {**(headers or {}), PUBLISHED_AT: published_at_now()}
        if (rid := request_id.current()) is not None:
            headers[request_id.MESSAGE_HEADER] = rid
        inject_trace(headers)
        started = time.perf_counter()
        properties = Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=message_id,
            headers=headers,
        )
        try:
            # One bound for everything: a robust channel being restored, the write, the confirm.
            async with asyncio.timeout(self._timeout):
                if channel.is_closed:
                    raise aio_pika.exceptions.ChannelInvalidStateError("the publisher's channel is closed")
                confirmed = await self._current(channel)
                try:
                    await (
                        await confirmed.submit(
                            self.exchange_name, routing_key, body, properties, mandatory=mandatory
                        )
                    )
                except asyncio.CancelledError:
                    # A channel closed without a reason rejects its confirmations with CancelledError:
                    # that is a lost channel, unless this task itself is being cancelled (or timed out).
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    raise aio_pika.exceptions.ChannelInvalidStateError("the channel closed") from None
            published(routing_key).observe(time.perf_counter() - started)
        except aio_pika.exceptions.DeliveryError as exc:
            log.error("broker did not take %s %s: %r", routing_key, message_id, exc)
            raise DependencyDown("RabbitMQ", "the message broker refused the message") from exc
        except BROKER_CHANNEL_LOST as exc:
            log.warning("publish of %s %s failed: %r", routing_key, message_id, exc)
            try:
                await asyncio.wait_for(self._reopen_if_lost(), self._timeout)
            except Exception as reopen_error:  # still down: the next publish tries again
                log.debug("publisher channel not reopened: %r", reopen_error)
            raise DependencyDown("RabbitMQ") from exc

    async def publish_all(self, messages: Sequence[Outgoing]) -> list[BaseException | None]:
        """Publish `messages` in this order, all in flight at once, and wait for their confirms under
        one timeout; return each one's outcome: None once the broker confirmed it, else what
        `publish` would have raised (DependencyDown for an outage or a refusal; the error of a
        message no broker can take, such as headers that cannot be encoded).

        For a relay's batch: one timeout and no task per message, where `publish` pays both. The
        headers go out as given (a relayed row carries its own request id and trace context)."""
        outcomes: list[BaseException | None] = [None] * len(messages)
        channel = self._channel
        if channel is None:
            return [DependencyDown("RabbitMQ") for _ in messages]
        now = published_at_now()
        started = time.perf_counter()
        sent: list[tuple[int, asyncio.Future[object]]] = []
        lost: BaseException | None = None
        try:
            async with asyncio.timeout(self._timeout):
                if channel.is_closed:
                    raise aio_pika.exceptions.ChannelInvalidStateError("the publisher's channel is closed")
                confirmed = await self._current(channel)
                for index, message in enumerate(messages):
                    properties = Basic.Properties(
                        content_type="application/json",
                        delivery_mode=PERSISTENT,
                        message_id=message.message_id,
                        headers={**(message.headers or {}), PUBLISHED_AT: now},
                    )
                    try:
                        future = await confirmed.submit(
                            self.exchange_name,
                            message.routing_key,
                            message.body,
                            properties,
                            mandatory=message.mandatory,
                        )
                    except BROKER_CHANNEL_LOST:
                        raise
                    except Exception as exc:  # this message cannot be encoded: the others go on
                        outcomes[index] = exc
                        continue
                    sent.append((index, future))
                if sent:
                    await asyncio.wait([future for _, future in sent])
        except _PUBLISH_ALL_LOST as exc:
            lost = exc
            log.warning("publish of %d messages failed: %r", len(messages), exc)
        elapsed = time.perf_counter() - started
        for index, future in sent:
            if not future.done():
                future.add_done_callback(_retrieve)  # its late outcome is nobody's any more
                outcomes[index] = DependencyDown("RabbitMQ")
            elif future.cancelled():
                outcomes[index] = DependencyDown("RabbitMQ")
            elif (error := future.exception()) is None:
                published(messages[index].routing_key).observe(elapsed)
            elif isinstance(error, aio_pika.exceptions.DeliveryError):
                log.error(
                    "broker did not take %s %s: %r",
                    messages[index].routing_key,
                    messages[index].message_id,
                    error,
                )
                refused = DependencyDown("RabbitMQ", "the message broker refused the message")
                refused.__cause__ = error  # as `publish` raises it: `from` the broker's answer
                outcomes[index] = refused
            else:  # the channel closed under it
                outcomes[index] = DependencyDown("RabbitMQ")
                lost = lost or error
        if lost is not None:
            submitted = {index for index, _ in sent}
            for index in range(len(messages)):
                if outcomes[index] is None and index not in submitted:
                    outcomes[index] = DependencyDown("RabbitMQ")
            try:
                await asyncio.wait_for(self._reopen_if_lost(), self._timeout)
            except Exception as reopen_error:  # still down: the next publish tries again
                log.debug("publisher channel not reopened: %r", reopen_error)
        return outcomes


CONNECTION = web.AppKey("amqp_connection", AbstractRobustConnection)
PUBLISHER = web.AppKey("publisher", Publisher)


def broker(
    settings: Settings, *, declare: Callable[[AbstractChannel, Topology], Awaitable[object]] | None = None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the robust connection, a publisher, and any topology this service needs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        topology = Topology.from_settings(settings)
        connection = await connect(settings)
        if declare is not None:
            channel = await connection.channel()
            await declare(channel, topology)
            await channel.close()
        publisher = Publisher(connection, topology, settings.dependency_timeout)
        await publisher.open()
        app[CONNECTION] = connection
        app[PUBLISHER] = publisher
        yield
        await publisher.close()
        await connection.close()

    return ctx
