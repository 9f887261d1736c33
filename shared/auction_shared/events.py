"""The events services exchange over RabbitMQ: one envelope, typed payloads, strict parsing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from .jsonio import dumps, loads


class EventType(StrEnum):
    """Routing keys on the `auction.events` topic exchange."""

    OFFER_CREATED = "offer.created"
    OFFER_UPDATED = "offer.updated"
    OFFER_SOLD = "offer.sold"
    BID_PLACED = "bid.placed"


class MalformedEvent(ValueError):
    """A message that can never be processed: it goes to the dead-letter queue."""


@dataclass(frozen=True)
class Event:
    """Envelope of every message: `id` lets consumers drop a redelivered copy."""

    id: str
    type: EventType
    occurred_at: str
    data: dict[str, Any]

    @classmethod
    def new(cls, type: EventType, data: dict[str, Any]) -> Event:
        return cls(str(uuid.uuid4()), type, datetime.now(timezone.utc).isoformat(), data)

    def encode(self) -> bytes:
        return dumps(
            {"id": self.id, "type": str(self.type), "occurred_at": self.occurred_at, "data": self.data}
        )

    @classmethod
    def decode(cls, body: bytes) -> Event:
        try:
            raw = loads(body)
            return cls(str(raw["id"]), EventType(raw["type"]), str(raw["occurred_at"]), dict(raw["data"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedEvent(f"not an event: {exc}") from None


@dataclass(frozen=True)
class BidPlaced:
    """A bid accepted for processing by the bids service; the worker decides its fate."""

    bid_id: uuid.UUID
    offer_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    bid_price: Decimal
    placed_at: datetime

    def to_data(self) -> dict[str, Any]:
        return {
            "bid_id": str(self.bid_id),
            "offer_id": str(self.offer_id),
            "user_id": str(self.user_id),
            "username": self.username,
            # A string keeps the price exact across the wire.
            "bid_price": str(self.bid_price),
            "placed_at": self.placed_at.isoformat(),
        }

    def to_event(self) -> Event:
        # The bid id doubles as the event id: a redelivered bid is recognised by it.
        return Event(str(self.bid_id), EventType.BID_PLACED, self.placed_at.isoformat(), self.to_data())

    @classmethod
    def from_event(cls, event: Event) -> BidPlaced:
        if event.type is not EventType.BID_PLACED:
            raise MalformedEvent(f"expected bid.placed, got {event.type}")
        d = event.data
        try:
            price = Decimal(d["bid_price"])
            placed_at = datetime.fromisoformat(d["placed_at"])
            bid = cls(
                bid_id=uuid.UUID(d["bid_id"]),
                offer_id=uuid.UUID(d["offer_id"]),
                user_id=uuid.UUID(d["user_id"]),
                username=str(d["username"]),
                bid_price=price,
                placed_at=placed_at,
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MalformedEvent(f"bad bid.placed payload: {exc!r}") from None
        if not price.is_finite() or price <= 0 or placed_at.tzinfo is None:
            raise MalformedEvent("bad bid.placed payload: price or time out of range")
        return bid
