"""Publishing contract events straight to a test run's events exchange, as any publisher could.

Tests use it to put events in the order (or disorder) they need: late, duplicated, misrouted.
"""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidUpdated, Contract


class EventPublisher:
    """Publishes events to the events exchange of `settings`' prefix."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def __aenter__(self) -> EventPublisher:
        self._connection = await aio_pika.connect(self._settings.amqp_url)
        channel = await self._connection.channel()
        self._exchange = await channel.get_exchange(Topology.from_settings(self._settings).events_exchange)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def publish(self, event: Contract, routing_key: str | None = None) -> None:
        """Publish under the event's own routing key, or under `routing_key` to misroute it."""
        await self._exchange.publish(
            aio_pika.Message(event.encode(), message_id=event.event_id),
            routing_key=routing_key if routing_key is not None else event.routing_key,
        )


def offer_view(offer_id: str, version: int, **fields: Any) -> dict[str, Any]:
    """An offer as the public sees it, at `version` (the fields a test does not name are plausible)."""
    return {
        "id": offer_id,
        "title": "lot",
        "bid_price": 10,
        "status": "live",
        "sold": False,
        "end_reason": None,
        "version": version,
        **fields,
    }


def bid_updated(recipient: str, offer: dict[str, Any], status: str = "leading", **bid: Any) -> BidUpdated:
    """The private event of one of `recipient`'s bids on `offer` (its max_price shown: it is theirs)."""
    view = {
        "id": str(uuid.uuid4()),
        "offer_id": offer["id"],
        "bid_price": offer["bid_price"],
        "max_price": 50,
        "status": status,
        "reason": None,
        "accepted": False,
        **bid,
    }
    return BidUpdated.one(uuid.UUID(recipient), view, offer)
