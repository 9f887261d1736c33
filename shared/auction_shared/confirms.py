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
import struct
import uuid
from collections import deque
from collections.abc import Mapping

import aiormq
import pamqp.encode
import pamqp.frame
from aiormq.abc import ChannelFrame
from pamqp import commands
from pamqp.common import FieldValue
from pamqp.header import ContentHeader

from .amqp_frames import FRAME_BODY, FRAME_END, FRAME_HEAD, FRAME_HEADER, FRAME_METHOD

MAX_ROUTING_KEY = 255

# --- the publish frames, encoded by hand --------------------------------------------------------
# pamqp's generic marshalling (a validated method object, every property looked at, the headers
# table through a chain of type checks) cost ~40 µs of CPU per publish, some 5 % of the bids
# service's CPU per bid. The Publisher sets only these four properties, and its headers hold
# strings, integers and floats: those frames are written here, byte for byte as pamqp writes them
# (tests/test_publish_frames.py compares the two); anything else goes through pamqp.
_FRAME_END = bytes((FRAME_END,))
_BASIC_PUBLISH = struct.pack(">IH", commands.Basic.Publish.index, 0)  # class+method, ticket 0
_CONTENT_HEADER = struct.Struct(">HxxQH")  # class (Basic), weight 0, body size, property flags
_LONG = struct.Struct(">I")
_FLOAT = struct.Struct(">f")  # pamqp writes a Python float as a 32-bit 'f' field
_FLAGS = commands.Basic.Properties.flags
_HAND_ENCODED = ("content_type", "headers", "delivery_mode", "message_id")
_OTHER_PROPERTIES = tuple(p for p in commands.Basic.Properties.__slots__ if p not in _HAND_ENCODED)


def _short(text: str) -> bytes | None:
    raw = text.encode("utf-8")
    return bytes((len(raw),)) + raw if len(raw) <= 255 else None


def _table(headers: Mapping[str, FieldValue]) -> bytes:
    parts = []
    for key, value in sorted(headers.items()):
        name = key.encode("utf-8")
        if len(name) > 128:  # pamqp truncates such a key (and logs it): let it
            return pamqp.encode.field_table(dict(headers))
        parts.append(bytes((len(name),)) + name)
        if isinstance(value, str):
            raw = value.encode("utf-8")
            parts.append(b"S" + _LONG.pack(len(raw)) + raw)
        elif isinstance(value, float):
            parts.append(b"f" + _FLOAT.pack(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(pamqp.encode.table_integer(value))  # sized by its value
        else:  # bool and every rarer type: as pamqp chooses
            parts.append(pamqp.encode.encode_table_value(value))
    payload = b"".join(parts)
    return _LONG.pack(len(payload)) + payload


def _frame(kind: int, number: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(kind, number, len(payload)) + payload + _FRAME_END


def _hand_encoded(
    number: int,
    method: commands.Basic.Publish,
    properties: commands.Basic.Properties,
    body_size: int,
) -> bytes | None:
    """The method and content-header frames of a publish, or None where pamqp must encode them.
    (`method` checked its exchange name and ticket when it was made.)"""
    if any(getattr(properties, name) not in (None, "") for name in _OTHER_PROPERTIES):
        return None
    exchange, routing_key = _short(method.exchange), _short(method.routing_key)
    if exchange is None or routing_key is None:
        return None
    flags, parts = 0, []
    if properties.content_type not in (None, ""):
        if (content_type := _short(properties.content_type)) is None:
            return None
        flags |= _FLAGS["content_type"]
        parts.append(content_type)
    if properties.headers is not None:
        flags |= _FLAGS["headers"]
        parts.append(_table(properties.headers))
    if properties.delivery_mode is not None:
        if properties.delivery_mode not in (1, 2):
            return None
        flags |= _FLAGS["delivery_mode"]
        parts.append(bytes((properties.delivery_mode,)))
    if properties.message_id not in (None, ""):
        if (message_id := _short(properties.message_id)) is None:
            return None
        flags |= _FLAGS["message_id"]
        parts.append(message_id)
    bits = bytes((bool(method.mandatory) | bool(method.immediate) << 1,))
    method_frame = _BASIC_PUBLISH + exchange + routing_key + bits
    header = _CONTENT_HEADER.pack(commands.Basic.frame_id, body_size, flags) + b"".join(parts)
    return _frame(FRAME_METHOD, number, method_frame) + _frame(FRAME_HEADER, number, header)


def publish_frames(
    number: int,
    method: commands.Basic.Publish,
    body: bytes,
    properties: commands.Basic.Properties,
    max_content_size: int,
) -> bytes:
    """Every frame of one publish on channel `number`: method, content header, body frames."""
    head = _hand_encoded(number, method, properties, len(body))
    if head is None:
        head = pamqp.frame.marshal(method, number) + pamqp.frame.marshal(
            ContentHeader(body_size=len(body), properties=properties), number
        )
    size = max_content_size
    return head + b"".join(_frame(FRAME_BODY, number, body[i : i + size]) for i in range(0, len(body), size))


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
        frames = publish_frames(channel.number, method, body, properties, channel.max_content_size)
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
        self._batch.append(frames)
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
