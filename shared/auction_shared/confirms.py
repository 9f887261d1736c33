"""Confirmed publishing on one AMQP channel with no lock: a loop iteration's publishes in one write.

aiormq's `basic_publish` holds the channel's lock until the connection's writer task has taken the
frames (its write queue holds 10 frames), so concurrent publishes wait for each other: at a few
hundred bids in flight that wait dominated intake. Here a publish is encoded and registered at once,
and everything published during one turn of the event loop goes to the writer as one frame.

The invariant is the order of confirms. The broker numbers a channel's publishes 1, 2, 3... in the
order it receives them and confirms by that number, so each publish takes the channel's next number
and registers its confirmation in the same synchronous step that appends its frames to the batch,
and batches reach the write queue strictly one after the other (a full queue is waited for, never
overtaken). Nothing else publishes on the channel. A returned (`mandatory`, unroutable) message is
matched by its message id, so two publishes of one id are never in flight together: the second
waits for the first's confirm.

Confirms, nacks and returns are still read by aiormq's channel, which resolves the futures
registered here, and a closed channel rejects them all, as for its own publishes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque

import aiormq
import pamqp.frame
from aiormq.abc import ChannelFrame
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

MAX_ROUTING_KEY = 255


class ConfirmedChannel:
    """Publishes on one underlying aiormq channel (opened with publisher confirms)."""

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self._loop = asyncio.get_running_loop()
        self._batch: list[bytes] = []
        self._flush_scheduled = False
        # Batches the write queue had no room for, oldest first, and the task that hands them over.
        self._backlog: deque[ChannelFrame] = deque()
        self._handing_over: asyncio.Task[None] | None = None

    @property
    def is_closed(self) -> bool:
        return self.channel.is_closed

    async def submit(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: commands.Basic.Properties,
        *,
        mandatory: bool,
    ) -> asyncio.Future[object]:
        """Send the message with the next batch; return the future of its confirm without waiting
        for it (a caller with many messages submits them in order, then waits for them all)."""
        if len(routing_key) > MAX_ROUTING_KEY:
            raise ValueError(f"routing key longer than {MAX_ROUTING_KEY} characters")
        if not properties.message_id:
            properties.message_id = uuid.uuid4().hex
        message_id = properties.message_id
        # A return names only the message id: one publish per id in flight keeps it unambiguous.
        while (earlier := self._in_flight(message_id)) is not None:
            await asyncio.wait([earlier])
        method = commands.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
        return self._send(method, body, properties)

    def _in_flight(self, message_id: str) -> asyncio.Future[object] | None:
        tag = self.channel.message_id_delivery_tag.get(message_id)
        if tag is None:
            return None
        confirmation = self.channel.confirmations.get(tag)
        return confirmation if isinstance(confirmation, asyncio.Future) else None

    def _send(
        self, method: commands.Basic.Publish, body: bytes, properties: commands.Basic.Properties
    ) -> asyncio.Future[object]:
        channel = self.channel
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the publisher's channel is closed")
        number = channel.number
        frames = [
            pamqp.frame.marshal(method, number),
            pamqp.frame.marshal(ContentHeader(body_size=len(body), properties=properties), number),
        ]
        size = channel.max_content_size
        frames += [
            pamqp.frame.marshal(ContentBody(body[i : i + size]), number) for i in range(0, len(body), size)
        ]
        # From here to the append nothing awaits: the number taken is this frame's place in the stream.
        confirmation: asyncio.Future[object] = channel.create_future()
        channel.delivery_tag += 1
        tag = channel.delivery_tag
        message_id = properties.message_id
        assert message_id is not None
        channel.confirmations[tag] = confirmation
        channel.message_id_delivery_tag[message_id] = tag

        def forget(_: asyncio.Future[object]) -> None:
            if channel.message_id_delivery_tag.get(message_id) == tag:
                del channel.message_id_delivery_tag[message_id]

        confirmation.add_done_callback(forget)
        self._batch += frames
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return confirmation

    def _flush(self) -> None:
        """Hand this turn's publishes to the connection's writer as one frame, behind any backlog."""
        self._flush_scheduled = False
        if not self._batch:
            return
        if self.channel.is_closed:
            # Its confirmations were rejected when it closed; frames on a closed channel number
            # would make the broker close the whole connection.
            self._batch = []
            return
        frame = ChannelFrame(payload=b"".join(self._batch), should_close=False)
        self._batch = []
        if not self._backlog:
            try:
                self.channel.write_queue.put_nowait(frame)
                return
            except asyncio.QueueFull:
                pass
        self._backlog.append(frame)
        if self._handing_over is None or self._handing_over.done():
            self._handing_over = self._loop.create_task(self._hand_over())

    async def _hand_over(self) -> None:
        """Wait for room in the write queue for each waiting batch, in order, until the channel closes."""
        closing = self.channel.closing
        try:
            while self._backlog and not closing.done():
                put = asyncio.ensure_future(self.channel.write_queue.put(self._backlog[0]))
                await asyncio.wait([put, closing], return_when=asyncio.FIRST_COMPLETED)
                if not put.done():
                    # Closed: the connection's writer is gone and every confirmation was rejected.
                    put.cancel()
                    self._backlog.clear()
                    return
                self._backlog.popleft()
            self._backlog.clear()
        finally:
            if not closing.done():
                closing.cancel()

    def close(self) -> None:
        if self._handing_over is not None:
            self._handing_over.cancel()
