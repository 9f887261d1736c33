"""Removing what a test run created: its database and every exchange and queue of its broker prefix."""

from __future__ import annotations

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.migrate import admin_url


async def drop_database(url: str) -> None:
    admin, name = admin_url(url)
    conn = await asyncpg.connect(admin)
    try:
        ident = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)")
    finally:
        await conn.close()


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove every exchange and queue of a prefix."""
    for name in [*topology.shard_queues, topology.dead_letter_queue]:
        await channel.queue_delete(name)
    for name in [
        topology.bids_exchange,
        topology.dead_letter_exchange,
        topology.events_exchange,
        topology.workers_exchange,
    ]:
        await channel.exchange_delete(name)


async def delete_broker_names(settings: Settings) -> None:
    """`delete_topology` for `settings`' prefix, on a connection of its own."""
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        await delete_topology(await connection.channel(), Topology.from_settings(settings))
    finally:
        await connection.close()
