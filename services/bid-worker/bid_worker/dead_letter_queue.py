"""The dead-letter queue for operators: list each message with why it died, replay it to its shard.

    python -m bid_worker.dead_letter_queue list              every message, oldest first, one JSON line each
    python -m bid_worker.dead_letter_queue replay [ID ...]   publish messages back (all, or those ids)

Listing takes the messages without acknowledging them and gives them back by closing its channel, so
the queue is the same afterwards. Replaying decodes the message and publishes it again exactly as the
bids service did (its routing key, its offer_id header, mandatory), so the consistent hash sends it
to its offer's shard again; the dead letter is acked only after the broker confirmed the copy. A crash
in between leaves both, and the worker drops the second copy of a bid by its id: nothing is lost or
applied twice. A replayed bid queues behind the bids placed since, and is judged at that place.
Messages that do not decode into work for a shard (a poison message stays poison) are never replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from auction_shared import broker
from auction_shared.broker import Publisher, Topology, dead_letter_depth
from auction_shared.config import ConfigError, Settings
from auction_shared.events import Contract, MalformedEvent, ShardWork, decode
from auction_shared.observability.metrics import DEAD_LETTER_DEPTH
from auction_shared.outages import broker_is_up

log = logging.getLogger("bid_worker")

# How often a running worker looks at the queue's depth for the metric.
DEPTH_SECONDS = 15.0
# The worker names the cause of a dead letter it sends itself in this header; the broker's own
# dead-lettering (a reject, the delivery limit) says why in x-death.
REASON_HEADER = "x-dead-reason"


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter queue, as an operator reads it."""

    message_id: str | None
    event_type: str | None
    offer_id: str | None
    reason: str
    queue: str | None  # the shard queue it died in, when the broker dead-lettered it
    problem: str | None  # why it cannot be replayed, if it cannot

    def line(self) -> str:
        return json.dumps(self.__dict__)


def _latest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]  # the broker puts the latest death first
    return {}


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read(message: AbstractIncomingMessage) -> tuple[DeadLetter, ShardWork | None]:
    """What the dead letter is and why it died; the work to replay, if it can be replayed."""
    headers: Mapping[str, Any] = message.headers or {}
    death = _latest_death(headers)
    event: Contract | None = None
    work: ShardWork | None = None
    problem = None
    try:
        event = decode(message.body)
        if isinstance(event, ShardWork):
            work = event
        else:
            problem = f"{event.type} is not work for a shard"
    except MalformedEvent as exc:
        problem = str(exc)
    letter = DeadLetter(
        message_id=message.message_id,
        event_type=str(event.type) if event is not None else None,
        offer_id=str(work.offer_id) if work is not None else _text(headers.get("offer_id")),
        reason=_text(headers.get(REASON_HEADER)) or _text(death.get("reason")) or "unknown",
        queue=_text(death.get("queue")),
        problem=problem,
    )
    return letter, work


async def measure_depth(
    connection: AbstractRobustConnection, topology: Topology, timeout: float
) -> int | None:
    """Messages waiting in the dead-letter queue now (also the metric), or None if the broker is away."""
    if not broker_is_up(connection):
        return None
    try:
        async with asyncio.timeout(timeout):
            channel = await connection.channel()
            try:
                depth = await dead_letter_depth(channel, topology)
            finally:
                await channel.close()
    except Exception as exc:  # the figure is missing this time; it is a figure, not a failure
        log.warning("dead-letter queue depth unknown: %r", exc)
        return None
    DEAD_LETTER_DEPTH.set(depth)
    return depth


async def watch_depth(connection: AbstractRobustConnection, topology: Topology, timeout: float) -> None:
    """Keep the depth metric current while the worker runs: a dead letter nobody sees helps nobody."""
    while True:
        await measure_depth(connection, topology, timeout)
        await asyncio.sleep(DEPTH_SECONDS)


async def _take_all(channel: AbstractChannel, topology: Topology) -> list[AbstractIncomingMessage]:
    """Every message now in the queue, unacknowledged: closing the channel gives them all back."""
    queue = await channel.declare_queue(topology.dead_letter_queue, passive=True)
    taken = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        taken.append(message)
    return taken


async def list_dead_letters(settings: Settings) -> list[DeadLetter]:
    connection = await broker.connect(settings, attempts=3)
    try:
        channel = await connection.channel()
        return [read(m)[0] for m in await _take_all(channel, Topology.from_settings(settings))]
    finally:
        await connection.close()


async def replay(settings: Settings, only: Sequence[str] = ()) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Publish the replayable dead letters (those with a message id in `only`, if given) back to their
    shards; return (replayed, kept)."""
    topology = Topology.from_settings(settings)
    connection = await broker.connect(settings, attempts=3)
    replayed: list[DeadLetter] = []
    kept: list[DeadLetter] = []
    try:
        publisher = Publisher(connection, topology, settings.dependency_timeout)
        await publisher.open()
        channel = await connection.channel()
        for message in await _take_all(channel, topology):
            letter, work = read(message)
            if work is None or (only and letter.message_id not in only):
                kept.append(letter)
                continue
            await publisher.send(work)  # raises unless the broker confirmed it
            await message.ack()
            replayed.append(letter)
    finally:
        # Closing gives every message not replayed back to the dead-letter queue.
        await connection.close()
    return replayed, kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bid_worker.dead_letter_queue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print every dead letter, one JSON line each")
    replay_parser = commands.add_parser("replay", help="publish dead letters back to their shards")
    replay_parser.add_argument("ids", nargs="*", help="message ids to replay (default: every replayable one)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(settings))
        for letter in letters:
            print(letter.line())
        print(f"{len(letters)} dead letters", file=sys.stderr)
        return 0
    replayed, kept = asyncio.run(replay(settings, args.ids))
    for letter in replayed:
        print(letter.line())
    print(f"replayed {len(replayed)}, kept {len(kept)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
