"""The publish time a message carries survives the broker's encoding exactly (a shard's lag reads it)."""

from __future__ import annotations

import pamqp.decode
import pamqp.encode
from pamqp import commands

from auction_shared.confirms import publish_frames
from auction_shared.observability.tracing import PUBLISHED_AT, published_at_now, seconds_since_published


def test_the_publish_time_goes_through_an_amqp_table_to_the_millisecond() -> None:
    sent = published_at_now()
    _, table = pamqp.decode.field_table(pamqp.encode.field_table({PUBLISHED_AT: sent}))
    assert table[PUBLISHED_AT] == sent


def test_the_lag_is_read_from_the_millisecond_stamp_and_nothing_else() -> None:
    now = published_at_now()
    lag = seconds_since_published({PUBLISHED_AT: now - 2500})
    assert lag is not None and 2.5 <= lag < 60
    assert seconds_since_published({PUBLISHED_AT: now + 10_000}) == 0.0  # a clock ahead: no lag
    assert seconds_since_published({}) is None
    assert seconds_since_published({PUBLISHED_AT: 1796060063.5}) is None  # an older publisher's float
    assert seconds_since_published({PUBLISHED_AT: True}) is None


def test_the_hand_encoded_publish_frames_carry_the_stamp_as_an_integer() -> None:
    stamp = published_at_now()
    properties = commands.Basic.Properties(headers={PUBLISHED_AT: stamp}, delivery_mode=2)
    frames = publish_frames(1, commands.Basic.Publish(exchange="x", routing_key="k"), b"{}", properties, 4096)
    assert pamqp.encode.table_integer(stamp) in frames
