"""A shard queue's channel: subscribe, take ordered batches, and hand the shard over to another worker."""

from __future__ import annotations

import asyncio
import time

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection


class Shard:
    """One shard queue: its own channel (delivery tags and acks are per channel) and inbox."""

    def __init__(self, index: int, queue_name: str) -> None:
        self.index = index
        self.queue_name = queue_name
        self.channel: AbstractChannel | None = None
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        # The batch being applied: a stop lets it finish before the channel closes.
        self.current: asyncio.Future[None] | None = None
        self.last_delivery = float("-inf")
        self.release_requested = False
        self._generation = 0

    async def subscribe(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        self._generation += 1
        generation = self._generation
        self.inbox = asyncio.Queue()
        self.channel = await connection.channel()
        await self.channel.set_qos(prefetch_count=prefetch)
        # declare_queue (passive), not get_queue: only queues the robust channel declared are
        # re-consumed after a reconnect; a get_queue consumer would be silently lost.
        queue = await self.channel.declare_queue(self.queue_name, passive=True)

        async def deliver(message: AbstractIncomingMessage) -> None:
            if generation == self._generation:
                self.last_delivery = time.monotonic()
                self.inbox.put_nowait(message)

        await queue.consume(deliver)

    async def release(self, connection: AbstractRobustConnection, prefetch: int) -> None:
        """Give back every message in hand, then queue up behind the next worker in line.

        Closing the channel (not cancelling the consumer) returns every message still in hand to
        the head of the queue in the same step that removes this consumer, so the next worker
        starts exactly where this one stopped and the offer's order holds. The same step restarts
        a shard loop that failed with messages in hand: they come back, in order, to whoever is next.
        """
        self.release_requested = False
        self._generation += 1
        if self.channel is not None and not self.channel.is_closed:
            await self.channel.close()
        await self.subscribe(connection, prefetch)

    def take_batch(self, first: AbstractIncomingMessage, limit: int) -> list[AbstractIncomingMessage]:
        batch = [first]
        while len(batch) < limit and not self.inbox.empty():
            batch.append(self.inbox.get_nowait())
        return batch
