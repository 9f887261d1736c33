"""The publisher's hand-encoded frames are byte for byte what pamqp's marshalling writes."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pamqp.frame
import pytest
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from auction_shared.confirms import publish_frames

HEADERS: list[dict[str, Any] | None] = [
    None,
    {},
    {
        "schema": 1,
        "offer_id": str(uuid.uuid4()),
        "published_at": 1796060063.123456,
        "x-request-id": "ab" * 16,
    },
    {"small": -128, "short": 30000, "ushort": 65535, "long": -(2**31), "ulong": 2**32 - 1, "huge": 2**62},
    {"yes": True, "no": False, "none": None, "dec": Decimal("1.25"), "nested": {"a": [1, "b"]}},
    {"naïve": "ünïcode ✓", "empty": "", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
    {"k" * 200: "a key pamqp truncates"},
]


def pamqp_frames(number: int, method: commands.Basic.Publish, body: bytes, props: Any, size: int) -> bytes:
    frames = [
        pamqp.frame.marshal(method, number),
        pamqp.frame.marshal(ContentHeader(body_size=len(body), properties=props), number),
    ]
    frames += [
        pamqp.frame.marshal(ContentBody(body[i : i + size]), number) for i in range(0, len(body), size)
    ]
    return b"".join(frames)


@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize("mandatory", [True, False])
@pytest.mark.parametrize("body", [b"", b'{"id": 1}', bytes(range(256)) * 40])
def test_the_frames_of_a_publish_are_pamqps(
    headers: dict[str, Any] | None, mandatory: bool, body: bytes
) -> None:
    method = commands.Basic.Publish(exchange="auction.events", routing_key="bid.placed", mandatory=mandatory)
    props = commands.Basic.Properties(
        content_type="application/json", delivery_mode=2, message_id=uuid.uuid4().hex, headers=headers
    )
    assert publish_frames(7, method, body, props, 4088) == pamqp_frames(7, method, body, props, 4088)


@pytest.mark.parametrize(
    "props",
    [
        commands.Basic.Properties(),
        commands.Basic.Properties(content_type="", message_id=""),
        commands.Basic.Properties(delivery_mode=1, correlation_id="c-1", reply_to="q", priority=5),
        commands.Basic.Properties(message_id="m", app_id="auction", headers={"a": 1}),
        commands.Basic.Properties(content_type="x" * 300, message_id="m"),
    ],
)
def test_other_properties_and_odd_values_are_encoded_as_pamqp_does(props: commands.Basic.Properties) -> None:
    method = commands.Basic.Publish(exchange="", routing_key="user.ñ", immediate=True)
    try:
        expected = pamqp_frames(1, method, b"x", props, 10)
    except Exception as exc:
        with pytest.raises(type(exc)):
            publish_frames(1, method, b"x", props, 10)
        return
    assert publish_frames(1, method, b"x", props, 10) == expected


def test_a_routing_key_too_long_for_the_wire_is_refused_as_pamqp_refuses_it() -> None:
    method = commands.Basic.Publish(exchange="auction.events", routing_key="é" * 200)
    props = commands.Basic.Properties(message_id="m")
    with pytest.raises(Exception) as pamqps:
        pamqp_frames(1, method, b"x", props, 10)
    with pytest.raises(type(pamqps.value)):
        publish_frames(1, method, b"x", props, 10)
