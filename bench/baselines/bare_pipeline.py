"""A bare bid handler that does the pipeline's work: publish with a confirm before the 202.

It reads the JSON body, builds a `bid.placed` event like the bids service's and publishes it
(persistent, mandatory, confirmed) to a topic exchange bound to a consistent-hash exchange on the
`offer_id` header in front of quorum shard queues, as the real pipeline is declared; `bare_consumer.py` applies
the bids to PostgreSQL in batches. No token check, no offer lookup, no rules: the ceiling of a
Python intake that queues bids durably, behind `bare_proxy.py`.

It publishes through the project's lock-free confirmed channel (`auction_shared/confirms.py`), not
aio-pika's `Exchange.publish`: that one holds the channel's lock until the writer task has taken each
publish, and behind it this baseline stayed under 140 requests/s under `hey -c 1000`, below the stack it
is meant to bound.

`BARE_PORT=9103 AMQP_URL=... AMQP_PREFIX=bare BID_SHARDS=8 python -m bench.baselines.bare_pipeline`
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import cast

import aio_pika
import aiormq
import orjson
from aiohttp import web
from pamqp.commands import Basic

from auction_shared.confirms import ConfirmedChannel
from bench.baselines import serve

EVENTS = f"{os.environ.get('AMQP_PREFIX', 'bare')}.events"
CHANNEL = web.AppKey("confirmed_channel", ConfirmedChannel)
BIDDER = uuid.uuid4()


async def accept(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    bid_id = uuid.uuid4()
    offer_id = body["offer_id"]
    placed_at = datetime.now(timezone.utc).isoformat()
    event = {
        "id": str(bid_id),
        "type": "bid.placed",
        "occurred_at": placed_at,
        "data": {
            "bid_id": str(bid_id),
            "offer_id": offer_id,
            "user_id": str(BIDDER),
            "username": "bare",
            "bid_price": str(body["bid_price"]),
            "placed_at": placed_at,
        },
    }
    properties = Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        message_id=str(bid_id),
        headers={"offer_id": offer_id},
    )
    confirmed = await request.app[CHANNEL].submit(
        EVENTS, "bid.placed", orjson.dumps(event), properties, mandatory=True
    )
    await confirmed
    return web.Response(
        body=orjson.dumps({"id": str(bid_id), "status": "pending"}),
        status=202,
        content_type="application/json",
    )


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def broker(app: web.Application) -> AsyncIterator[None]:
    prefix, shards = os.environ["AMQP_PREFIX"], int(os.environ["BID_SHARDS"])
    connection = await aio_pika.connect(os.environ["AMQP_URL"])
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    # As declare_bid_pipeline does: a topic exchange, bound on bid.placed to the hash exchange.
    events = await channel.declare_exchange(EVENTS, aio_pika.ExchangeType.TOPIC, durable=True)
    hashed = await channel.declare_exchange(
        f"{prefix}.bids",
        aio_pika.ExchangeType.X_CONSISTENT_HASH,
        durable=True,
        arguments={"hash-header": "offer_id"},
    )
    await hashed.bind(events, routing_key="bid.placed")
    for shard in range(shards):
        queue = await channel.declare_queue(
            f"{prefix}.bids.shard.{shard:02d}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(hashed, routing_key="1")
    app[CHANNEL] = ConfirmedChannel(cast(aiormq.Channel, await channel.get_underlay_channel()))
    yield
    await connection.close()


def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(broker)
    app.router.add_post("/v1/bid", accept)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    serve(create_app(), "bare pipeline")
