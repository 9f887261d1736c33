"""Dead-lettering with a reason: a message that can never be applied leaves its shard, saying why.

A plain reject sends the message to the dead-letter queue without a word about the cause. Instead a
copy goes to the dead-letter exchange with the reason in its `x-dead-reason` header (confirmed by the
broker), and only then is the original acked, so the shard goes on and an operator sees what failed.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from auction_shared.broker import Topology
from auction_shared.events import BidPlaced

from . import observed
from .dead_letter_queue import REASON_HEADER
from .shards import Delivery

log = logging.getLogger("bid_worker")


class DeadLetters:
    def __init__(self, connection: AbstractRobustConnection, topology: Topology, timeout: float) -> None:
        self._connection = connection
        self._topology = topology
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self.count = 0

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.get_exchange(self._topology.dead_letter_exchange)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def send(self, message: Delivery, kind: str, reason: str, part: BidPlaced | None = None) -> bool:
        """Move `message` to the dead-letter queue with `reason` (`kind` names it for the metrics);
        the caller no longer acks it. If the copy cannot be published, the original is rejected
        without requeue, which reaches the same queue (without the header): the shard must not stop
        on it either way.

        With `part`, one bid of a message that holds several: that bid alone goes, as a message of
        its own with the message's headers, and the message is left to the caller. The answer then
        says whether the copy was sent."""
        body, message_id = (
            (message.body, message.message_id) if part is None else (part.encode(), part.event_id)
        )
        log.error("dead-lettering message %s: %s", message_id, reason)
        self.count += 1
        observed.dead_lettered(kind)
        headers = dict(message.headers)
        headers[REASON_HEADER] = reason[:500]
        copy = aio_pika.Message(
            body,
            headers=headers,
            message_id=message_id,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            if self._exchange is None:
                raise RuntimeError("dead-letter channel not open")
            async with asyncio.timeout(self._timeout):
                await self._exchange.publish(copy, routing_key="")
        except Exception as exc:
            log.warning("dead letter copy not sent (%r)", exc)
            if part is None:
                await self.reject(message)
            return False
        if part is None:
            try:
                await message.ack()
            except Exception as ack_error:  # the channel died: the message comes back, and again here
                log.warning("could not ack message %s after its copy: %r", message_id, ack_error)
        return True

    async def reject(self, message: Delivery) -> None:
        """Reject without requeue: the message reaches the dead-letter queue without a reason."""
        try:
            await message.reject(requeue=False)
        except Exception as reject_error:  # the channel died: the message comes back, and again here
            log.warning("could not reject message %s: %r", message.message_id, reject_error)
