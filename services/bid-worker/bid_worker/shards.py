"""A shard queue's channel: subscribe, take ordered batches, and hand the shard over to another worker.

The shard consumes on the channel's underlying aiormq channel, not through aio-pika's `Queue.consume`:
aio-pika builds a full message object and a second task for every delivery, which was a sixth of the
worker's CPU in the drain. A `Delivery` keeps only what the worker reads. The robust channel still
reopens itself after a reconnect; the shard subscribes again from its reopen callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

log = logging.getLogger("bid_worker")


class Delivery:
    """One message as its shard received it: what the worker reads, and how it is settled.

    Acks and rejects go to the channel that delivered it: after a reconnect a message from the old
    channel cannot be settled (the broker hands it out again)."""

    __slots__ = ("body", "headers", "message_id", "content_type", "_tag", "_channel")

    def __init__(self, message: aiormq.abc.DeliveredMessage) -> None:
        properties = message.header.properties
        self.body: bytes = message.body
        self.headers: Mapping[str, Any] = properties.headers or {}
        self.message_id: str | None = properties.message_id
        self.content_type: str | None = properties.content_type
        delivery = message.delivery
        assert isinstance(delivery, aiormq.spec.Basic.Deliver)  # a consumer is given only these
        self._tag: int = delivery.delivery_tag or 0
        self._channel = message.channel

    async def ack(self, multiple: bool = False) -> None:
        """Ack this message (and, with `multiple`, every earlier one of its channel)."""
        await self._channel.basic_ack(self._tag, multiple=multiple)

    async def reject(self, requeue: bool = False) -> None:
        await self._channel.basic_reject(self._tag, requeue=requeue)


# While a batch gathers, how often the shard looks whether a full one is in.
GATHER_STEP_SECONDS = 0.005

# Put in a shard's inbox to wake its loop when nothing else may come: the broker cancelled the
# consumer (the queue was deleted, say), so the loop subscribes again, or fails and is restarted.
WAKE = object()


class Shard:
    """One shard queue: its own channel (delivery tags and acks are per channel) and inbox."""

    def __init__(self, index: int, queue_name: str) -> None:
        self.index = index
        self.queue_name = queue_name
        self.channel: AbstractRobustChannel | None = None
        self.inbox: asyncio.Queue[Delivery | object] = asyncio.Queue()
        # The batch being applied: a stop lets it finish before the channel closes.
        self.current: asyncio.Future[None] | None = None
        self.last_delivery = float("-inf")
        self.batches = 0  # applied (committed) so far
        self.release_requested = False
        self._generation = 0

    async def subscribe(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        self._generation += 1
        generation = self._generation
        self.inbox = asyncio.Queue()
        channel = await connection.channel()
        assert isinstance(channel, AbstractRobustChannel)
        self.channel = channel
        tag = f"shard-{self.index}-{generation}"

        async def deliver(message: aiormq.abc.DeliveredMessage) -> None:
            if generation == self._generation:
                self.last_delivery = time.monotonic()
                self.inbox.put_nowait(Delivery(message))

        def cancelled(frame: aiormq.spec.Basic.Cancel) -> None:
            if frame.consumer_tag == tag and generation == self._generation:
                log.warning("the broker cancelled the consumer of shard %d", self.index)
                self.release_requested = True
                self.inbox.put_nowait(WAKE)

        async def consume(*_: object) -> None:
            if generation != self._generation:
                # A channel the shard has let go of came back by itself (the broker closed it, and
                # the robust channel reopened it): it must not become the queue's active consumer.
                await channel.close()
                return
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(cancelled)
            await underlay.basic_consume(self.queue_name, deliver, consumer_tag=tag)

        try:
            await channel.set_qos(prefetch_count=prefetch)
            # Declared (passive) on the robust channel, so a reopened channel checks the queue again.
            await channel.declare_queue(self.queue_name, passive=True)
            await consume()
        except BaseException:
            self._generation += 1  # this subscription failed: nothing of it may consume
            await self._close(channel)
            raise
        # After a reconnect the robust channel reopens (qos and the queue restored), then this.
        channel.reopen_callbacks.add(consume)

    @staticmethod
    async def _close(channel: AbstractRobustChannel) -> None:
        """Close for good (a robust channel closed by us does not reopen), whatever state it is in."""
        try:
            await channel.close()
        except Exception as exc:
            log.debug("closing a shard channel: %r", exc)

    async def release(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        """Give back every message in hand, then queue up behind the next worker in line.

        Closing the channel (not cancelling the consumer) returns every message still in hand to
        the head of the queue in the same step that removes this consumer, so the next worker
        starts exactly where this one stopped and the offer's order holds. The same step restarts
        a shard loop that failed with messages in hand: they come back, in order, to whoever is next.
        """
        self.release_requested = False
        self._generation += 1
        if self.channel is not None:
            await self._close(self.channel)
        await self.subscribe(connection, prefetch)

    async def gather(self, limit: int, wait: float) -> None:
        """Under load, let the next batch fill up for at most `wait` seconds before it is taken.

        A batch's cost is mostly fixed (its transaction's round trips and commit, the relay's pass,
        one private message per bidder), so fuller batches cost the worker, PostgreSQL and the relay
        less per bid. Only while others wait behind the one in hand: a lone bid is applied at
        once. The wait ends as soon as `limit` messages are in, or a hand-over is asked for.
        """
        if wait <= 0 or not 0 < self.inbox.qsize() < limit:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.inbox.qsize() < limit and not self.release_requested:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, GATHER_STEP_SECONDS))

    def take_batch(self, first: Delivery, limit: int) -> list[Delivery]:
        """`first` and the deliveries waiting after it, up to `limit` (a wake-up is not one)."""
        batch = [first]
        inbox = self.inbox
        while len(batch) < limit and not inbox.empty():
            item = inbox.get_nowait()
            if isinstance(item, Delivery):
                batch.append(item)
        return batch
