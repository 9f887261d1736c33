"""A bare bid consumer: aio-pika with prefetch 1000 and multiple acks, one set-based statement per batch.

It does the same database work as the bid-worker (a row per bid, each offer's price and count moved)
without the worker's rules, ordering guarantees or events: the ceiling a worker is measured against.

`DATABASE_URL=... AMQP_URL=... AMQP_PREFIX=... BID_SHARDS=8 python -m bench.baselines.bare_consumer`
"""

from __future__ import annotations

import asyncio
import os
import signal

import aio_pika
import asyncpg
import orjson

PREFETCH = 1000
APPLY = """
WITH incoming AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::text[])
        WITH ORDINALITY AS b(id, offer_id, user_id, username, bid_price, placed_at, n)
), inserted AS (
    INSERT INTO bids (id, offer_id, user_id, username, bid_price, placed_at, status, processed_by)
    SELECT id, offer_id, user_id, username, bid_price, placed_at::timestamptz, 'rejected', 'bare'
    FROM incoming ORDER BY n
    ON CONFLICT (id) DO NOTHING
    RETURNING offer_id, bid_price
)
UPDATE offers o SET bid_price = greatest(o.bid_price, t.top), bid_count = o.bid_count + t.n
FROM (SELECT offer_id, max(bid_price) AS top, count(*) AS n FROM inserted GROUP BY offer_id) t
WHERE o.id = t.offer_id
"""


async def main() -> None:
    prefix, shards = os.environ["AMQP_PREFIX"], int(os.environ["BID_SHARDS"])
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=2)
    connection = await aio_pika.connect(os.environ["AMQP_URL"])
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    inbox: list[aio_pika.abc.AbstractIncomingMessage] = []
    arrived = asyncio.Event()

    async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        inbox.append(message)
        arrived.set()

    for shard in range(shards):
        queue = await channel.get_queue(f"{prefix}.bids.shard.{shard:02d}", ensure=False)
        await queue.consume(deliver)
    print("bare consumer consuming", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    while not stop.is_set():
        waiter = asyncio.ensure_future(arrived.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        if not inbox:
            continue
        batch = inbox[:PREFETCH]
        del inbox[:PREFETCH]
        if not inbox:
            arrived.clear()
        columns: list[list[str]] = [[], [], [], [], [], []]
        for message in batch:
            d = orjson.loads(message.body)["data"]
            for column, key in zip(
                columns, ("bid_id", "offer_id", "user_id", "username", "bid_price", "placed_at")
            ):
                column.append(d[key])
        await pool.execute(APPLY, *columns)
        # Delivery tags grow in delivery order on one channel: the batch's last acks all before it.
        await batch[-1].ack(multiple=True)
    await connection.close()
    await pool.close()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())
