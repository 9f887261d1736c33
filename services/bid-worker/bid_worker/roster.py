"""Roster and sharing at run time: announce this worker, hear the others, hand on shards it does not own.

The pure part (who is alive, who owns a shard) is `sharing.py`; this module does the broker side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aio_pika import Message
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from auction_shared.broker import Topology

from .shards import Shard
from .sharing import Roster, owner

log = logging.getLogger("bid_worker")

# How often workers announce themselves, and how often each checks whether to hand a shard on.
HEARTBEAT_SECONDS = 2.0
REBALANCE_SECONDS = 5.0


def new_roster(worker_id: str) -> Roster:
    return Roster(worker_id, ttl=3 * HEARTBEAT_SECONDS)


async def join_roster(
    connection: AbstractRobustConnection, topology: Topology, roster: Roster
) -> asyncio.Task[None]:
    """Listen to the other workers' heartbeats and start announcing this one; return the beat task."""
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        topology.workers_exchange, ExchangeType.FANOUT, auto_delete=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)

    async def heard(message: AbstractIncomingMessage) -> None:
        roster.heard(message.body.decode(errors="replace"))

    await queue.consume(heard, no_ack=True)

    async def announce() -> None:
        while True:
            try:
                await exchange.publish(Message(roster.me.encode()), routing_key="")
            except Exception as exc:  # the robust connection is reconnecting; try next beat
                log.debug("heartbeat not sent: %r", exc)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    return asyncio.create_task(announce(), name="heartbeat")


async def share_shards(roster: Roster, shards: Sequence[Shard]) -> None:
    """Ask each shard loop to let go of a busy shard that another live worker owns."""
    while True:
        await asyncio.sleep(REBALANCE_SECONDS)
        members = roster.members()
        recent = time.monotonic() - REBALANCE_SECONDS
        for shard in shards:
            if shard.last_delivery >= recent and owner(shard.index, members) != roster.me:
                shard.release_requested = True
