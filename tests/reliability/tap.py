"""A test's own queue on the events exchange: what the broker really delivered, in queue order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import aio_pika

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidsPlaced, Contract, MalformedEvent, decode


class EventTap:
    """Binds an exclusive queue to `<prefix>.events` for `routing_keys` and records every message.

    Connected straight to the real broker (never through a fault proxy), so it sees every message
    the services got confirmed, including copies that at-least-once delivery sends twice.
    """

    def __init__(self, settings: Settings, *routing_keys: str) -> None:
        self.settings = settings
        self.routing_keys = routing_keys
        self.events: list[Contract] = []
        self.routing_keys_seen: list[str] = []  # of every message, decodable or not
        self.malformed: list[tuple[str, str]] = []  # (routing key, why it could not be decoded)
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> EventTap:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await channel.declare_exchange(
            Topology.from_settings(self.settings).events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"{self.settings.amqp_prefix}.tap.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True
        )
        for key in self.routing_keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.routing_keys_seen.append(message.routing_key or "")
        try:
            event = decode(message.body)
            # Several bids of one offer in one message: recorded one by one, in their order.
            self.events += event.bids if isinstance(event, BidsPlaced) else [event]
        except MalformedEvent as exc:
            self.malformed.append((message.routing_key or "", str(exc)))

    def event_ids_by_subject(self, subject: str = "id") -> dict[str, set[str]]:
        """For each subject id (`data[subject]`), the distinct event ids that told about it."""
        ids: dict[str, set[str]] = defaultdict(set)
        for event in self.events:
            ids[str(event.to_data()[subject])].add(event.event_id)
        return ids

    def first_copies(self) -> list[Contract]:
        """Every event once, in the order its first copy arrived (the consumer's dedupe by id)."""
        seen: set[str] = set()
        unique = []
        for event in self.events:
            if event.event_id not in seen:
                seen.add(event.event_id)
                unique.append(event)
        return unique
