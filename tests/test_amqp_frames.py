"""The buffered frame reader yields what aiormq's own reader did: pamqp's decoding, frame for frame."""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal
from typing import Any

import aiormq.connection
import pamqp.frame
import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from auction_shared import amqp_frames
from auction_shared.amqp_frames import BufferedFrameReceiver

short = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
exchanges = st.from_regex(r"[a-zA-Z0-9_.:-]{0,40}", fullmatch=True)
tag = st.integers(min_value=0, max_value=2**63 - 1)
table_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.text(max_size=20),
    st.decimals(min_value=-1000, max_value=1000, places=2),
)
tables = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda s: len(s.encode()) <= 128), table_values
)


@st.composite
def properties(draw: st.DrawFn) -> commands.Basic.Properties:
    """Any subset of Basic's content properties (cluster_id stays empty: pamqp refuses one)."""
    maybe = lambda strategy: draw(st.one_of(st.none(), strategy))  # noqa: E731
    stamp = maybe(st.integers(min_value=0, max_value=2**33))
    return commands.Basic.Properties(
        content_type=maybe(short),
        content_encoding=maybe(short),
        headers=maybe(tables),
        delivery_mode=maybe(st.sampled_from([1, 2])),
        priority=maybe(st.integers(min_value=0, max_value=9)),
        correlation_id=maybe(short),
        reply_to=maybe(short),
        expiration=maybe(st.integers(min_value=0, max_value=10**6).map(str)),
        message_id=maybe(short),
        timestamp=None if stamp is None else datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc),
        message_type=maybe(short),
        user_id=maybe(short),
        app_id=maybe(short),
    )


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One frame as the broker writes it, on any channel."""
    channel = draw(st.integers(min_value=0, max_value=2047))
    kind = draw(
        st.sampled_from(["deliver", "header", "body", "ack", "nack", "consume_ok", "close", "heartbeat"])
    )
    if kind == "deliver":
        frame: Any = commands.Basic.Deliver(
            consumer_tag=draw(short),
            delivery_tag=draw(tag),
            redelivered=draw(st.booleans()),
            exchange=draw(exchanges),
            routing_key=draw(short),
        )
    elif kind == "header":
        frame = ContentHeader(body_size=draw(tag), properties=draw(properties()))
    elif kind == "body":
        frame = ContentBody(draw(st.binary(min_size=1, max_size=300)))
    elif kind == "ack":
        frame = commands.Basic.Ack(delivery_tag=draw(tag), multiple=draw(st.booleans()))
    elif kind == "nack":
        frame = commands.Basic.Nack(delivery_tag=draw(tag), multiple=draw(st.booleans()))
    elif kind == "consume_ok":
        frame = commands.Basic.ConsumeOk(consumer_tag=draw(short))
    elif kind == "close":
        frame = commands.Channel.Close(reply_code=404, reply_text=draw(short), class_id=50, method_id=10)
    else:
        return pamqp.frame.marshal(Heartbeat(), 0)
    return pamqp.frame.marshal(frame, channel)


def fields(value: Any) -> Any:
    """A frame as plain data: its class and every attribute, nested objects included."""
    names: list[str] = []
    for cls in type(value).__mro__:
        names += [n for n in getattr(cls, "__slots__", ()) if n not in names]
    names += [n for n in getattr(value, "__dict__", {}) if n not in names]
    if not names:  # a plain value, or a frame without fields (a heartbeat)
        return (
            value
            if isinstance(value, (str, bytes, int, Decimal, datetime.datetime, dict, list)) or value is None
            else type(value).__name__
        )
    return (type(value).__name__, {n: fields(getattr(value, n, "<unset>")) for n in names})


def reader_of(data: bytes, cuts: list[int]) -> asyncio.StreamReader:
    """A stream that hands `data` over in pieces cut at `cuts`, then ends."""
    reader = asyncio.StreamReader()
    last = 0
    for cut in sorted({c for c in cuts if 0 < c < len(data)}):
        reader.feed_data(data[last:cut])
        last = cut
    reader.feed_data(data[last:])
    reader.feed_eof()
    return reader


async def read_all(data: bytes, cuts: list[int]) -> list[Any]:
    receiver = BufferedFrameReceiver(reader_of(data, cuts))
    receiver.started = True
    out = []
    while True:
        try:
            out.append(await receiver.get_frame())
        except StopAsyncIteration:
            return out
        except AMQPConnectionError:  # the stream ended: as between frames here, with nothing left
            return out


def pamqp_reads(data: bytes) -> list[Any]:
    out = []
    while data:
        used, channel, frame = pamqp.frame.unmarshal(data)
        out.append((used, channel, frame))
        data = data[used:]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=30), st.lists(st.integers(min_value=1, max_value=20_000)))
def test_any_stream_of_frames_reads_as_pamqp_reads_it(stream: list[bytes], cuts: list[int]) -> None:
    data = b"".join(stream)
    got = asyncio.run(read_all(data, cuts))
    want = pamqp_reads(data)
    assert [(used, ch, fields(f)) for used, ch, f in got] == [(used, ch, fields(f)) for used, ch, f in want]


def test_a_bid_delivery_is_decoded_quickly_into_pamqp_objects() -> None:
    """The frames of a delivery take the quick path (no pamqp decoding), with pamqp's classes."""
    props = commands.Basic.Properties(
        content_type="application/json",
        headers={"offer_id": "0b8f6a4e-8d0c-4c1b-9b1e-2f3c4d5e6f70", "schema": 1, "ratio": Decimal("1.5")},
        delivery_mode=2,
        message_id="6f1c1a52-0d55-4d2b-8f8e-6a0e2b1c3d4e",
    )
    body = b'{"bid_price": "12.50"}'
    wire = [
        pamqp.frame.marshal(
            commands.Basic.Deliver("shard-3-1", 2**40, True, "auction.events", "bid.placed"), 5
        ),
        pamqp.frame.marshal(ContentHeader(body_size=len(body), properties=props), 5),
        pamqp.frame.marshal(ContentBody(body), 5),
        pamqp.frame.marshal(commands.Basic.Ack(7, multiple=True), 2),
    ]
    quick = [amqp_frames._quick(w[0], w[7:-1]) for w in wire]
    assert [fields(q) for q in quick] == [fields(pamqp.frame.unmarshal(w)[2]) for w in wire]
    assert isinstance(quick[0], commands.Basic.Deliver) and quick[0].redelivered is True
    assert quick[1].properties.headers["ratio"] == Decimal("1.5")


@pytest.mark.parametrize(
    "broken",
    [
        # the frame-end octet is wrong
        pamqp.frame.marshal(commands.Basic.Ack(1), 1)[:-1] + b"\x00",
        # a consumer tag that is not UTF-8
        pamqp.frame.marshal(commands.Basic.Deliver("ab", 1, False, "", "k"), 1).replace(
            b"\x02ab", b"\x02\xff\xfe"
        ),
        # a method no one knows
        b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x27\x0f\xce",
    ],
)
def test_a_malformed_frame_fails_as_pamqp_fails_it(broken: bytes) -> None:
    with pytest.raises(InvalidFrameError):
        asyncio.run(read_all(broken, []))


def test_the_frames_before_a_malformed_one_are_read_first() -> None:
    good = pamqp.frame.marshal(commands.Basic.Ack(7), 1)
    broken = pamqp.frame.marshal(commands.Basic.Ack(8), 1)[:-1] + b"\x00"

    async def read() -> tuple[list[Any], BaseException | None]:
        receiver = BufferedFrameReceiver(reader_of(good + broken + good, []))
        receiver.started = True
        frames = []
        try:
            while True:
                frames.append(await receiver.get_frame())
        except InvalidFrameError as exc:
            return frames, exc

    frames, error = asyncio.run(read())
    assert [f.delivery_tag for _, _, f in frames] == [7]
    assert isinstance(error, InvalidFrameError)


def test_a_stream_cut_inside_a_frame_is_a_lost_connection() -> None:
    whole = pamqp.frame.marshal(ContentBody(b"x" * 100), 1)

    async def read() -> None:
        receiver = BufferedFrameReceiver(reader_of(whole[:50], []))
        receiver.started = True
        await receiver.get_frame()

    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        asyncio.run(read())


def test_a_stream_that_ended_between_frames_ends_the_iteration() -> None:
    async def read() -> list[Any]:
        reader = reader_of(pamqp.frame.marshal(Heartbeat(), 0), [])
        receiver = BufferedFrameReceiver(reader)
        receiver.started = True
        return [frame async for frame in receiver]

    assert [type(f) for _, _, f in asyncio.run(read())] == [Heartbeat]


def test_a_broker_that_answers_with_its_protocol_header_is_refused() -> None:
    async def read() -> None:
        await BufferedFrameReceiver(reader_of(b"AMQP\x00\x00\x09\x01", [])).get_frame()

    with pytest.raises(ProtocolSyntaxError):
        asyncio.run(read())


def test_a_protocol_header_that_arrives_in_two_reads_is_refused_too() -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"AM")
        receiver = BufferedFrameReceiver(reader)
        reading = asyncio.ensure_future(receiver.get_frame())
        await asyncio.sleep(0)  # the first read takes "AM" alone
        reader.feed_data(b"QP\x00\x00\x09\x01")
        reader.feed_eof()
        await reading

    with pytest.raises(ProtocolSyntaxError):
        asyncio.run(read())


def test_install_makes_aiormq_connect_with_the_buffered_reader() -> None:
    amqp_frames.install()
    assert aiormq.connection.FrameReceiver is BufferedFrameReceiver
