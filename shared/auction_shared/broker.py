"""RabbitMQ: the robust connection as a cleanup context, the topology, and the one event publisher."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

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
from pamqp.common import FieldValue

from .config import Settings
from .events import Contract
from .observability import request_id
from .observability.metrics import BROKER_PUBLISH
from .observability.tracing import PUBLISHED_AT
from .outages import BROKER_UNREACHABLE, broker_is_up
from .problems import DependencyDown
from .retry import Backoff, retry

log = logging.getLogger(__name__)

# A message that keeps coming back (its worker crashed with it in hand, again and again) goes to the
# dead-letter queue after this many deliveries. Unparseable messages go there at once. Handing a
# shard to another worker returns its prefetched messages too, which also counts: keep it generous.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue, derived from one prefix so test runs never collide."""

    prefix: str
    bid_shards: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(prefix=settings.amqp_prefix, bid_shards=settings.bid_shards)

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def bids_exchange(self) -> str:
        return f"{self.prefix}.bids"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def workers_exchange(self) -> str:
        """Bid-workers announce themselves here, to share the shards out between them."""
        return f"{self.prefix}.workers"

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
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
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


# How often a lost connection is retried once it was up.
RECONNECT_SECONDS = 1.0


async def connect(settings: Settings, *, attempts: int = 30) -> AbstractRobustConnection:
    """Open a robust connection (it reconnects and re-declares by itself once it is up)."""

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


class Publisher:
    """Publishes persistent messages to the events exchange and waits for the broker's confirm.

    Unroutable messages are returned by the broker and raise, so a confirm always means a queue has
    the message. Concurrent callers share one channel: their confirms pipeline.
    """

    def __init__(self, connection: AbstractRobustConnection, topology: Topology, timeout: float):
        self._connection = connection
        self._topology = topology
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._reopening: asyncio.Lock = asyncio.Lock()

    @property
    def exchange_name(self) -> str:
        return self._topology.events_exchange

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare_events_exchange(self._channel, self._topology)

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
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

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
        if self._exchange is None:
            raise DependencyDown("RabbitMQ")
        # When it entered the broker (a shard's lag), and the request that caused it (the consumer
        # logs under it); the trace context is added by the aio-pika instrumentation (`traceparent`).
        headers = {**(headers or {}), PUBLISHED_AT: time.time()}
        if (rid := request_id.current()) is not None:
            headers[request_id.MESSAGE_HEADER] = rid
        started = time.perf_counter()
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            headers=headers,
        )
        try:
            # The outer bound also covers what aio-pika's own timeout does not: waiting for a robust
            # channel that is being restored, and a confirm lost with a dying connection.
            async with asyncio.timeout(self._timeout):
                await self._exchange.publish(
                    message, routing_key=routing_key, mandatory=mandatory, timeout=self._timeout
                )
            BROKER_PUBLISH.labels(routing_key).observe(time.perf_counter() - started)
        except aio_pika.exceptions.DeliveryError as exc:
            log.error("broker did not take %s %s: %r", routing_key, message_id, exc)
            raise DependencyDown("RabbitMQ", "the message broker refused the message") from exc
        except (
            asyncio.TimeoutError,
            aiormq.exceptions.AMQPError,
            aio_pika.exceptions.ChannelInvalidStateError,
            RuntimeError,
            ConnectionError,
        ) as exc:
            log.warning("publish of %s %s failed: %r", routing_key, message_id, exc)
            try:
                await asyncio.wait_for(self._reopen_if_lost(), self._timeout)
            except Exception as reopen_error:  # still down: the next publish tries again
                log.debug("publisher channel not reopened: %r", reopen_error)
            raise DependencyDown("RabbitMQ") from exc


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
