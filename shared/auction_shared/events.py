"""The contracts: one frozen class per message the services exchange over RabbitMQ.

Each class owns its routing key, its headers, its schema version and its validation; publishers
send only these (`Publisher.send`), consumers read only these (`decode`). On the wire every message is
one JSON envelope: `{"id", "type", "schema", "occurred_at", "data"}`.

Routing keys on the events exchange:
- `offer.created|updated|sold|ended`: public offer events (the gateways fan them out);
- `bid.placed` and `command.*`: work for an offer's shard (hashed on the `offer_id` header); a
  `bid.placed` message holds one bid (`BidPlaced`) or several of one offer (`BidsPlaced`);
- `user.<user id>`: private events for one user (the gateways bind the keys of connected users).

Longer than one job's module on purpose: every message the system sends sits here beside the others,
so a producer and a consumer read the same definition and a reader sees the whole vocabulary at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from asyncpg.pgproto.pgproto import UUID as FastUUID

from .jsonio import dumps, loads

SCHEMA_VERSION = 1
# Money bounds of the public API: positive, below 10^12, at most two decimals.
MONEY_LIMIT = Decimal(10) ** 12
MAX_USERNAME = 32


class EventType(StrEnum):
    """The `type` of an envelope: names the contract class."""

    OFFER_CREATED = "offer.created"
    OFFER_UPDATED = "offer.updated"
    OFFER_SOLD = "offer.sold"
    OFFER_ENDED = "offer.ended"
    BID_PLACED = "bid.placed"
    BIDS_PLACED = "bids.placed"
    BID_UPDATED = "bid.updated"
    CLOSE_OFFER = "command.close"


class MalformedEvent(ValueError):
    """A message that can never be processed: it goes to the dead-letter queue, with this reason."""


def private_key(user_id: uuid.UUID | str) -> str:
    """The routing key of events for one user."""
    return f"user.{user_id}"


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class Contract:
    """What every message has: an id (consumers drop a redelivered copy by it) and a time."""

    type: ClassVar[EventType]
    # A message that must reach a queue: the broker's return is a failure, not a silent drop.
    mandatory: ClassVar[bool] = False
    # The routing key of a contract that does not travel under its own type ("" if it does).
    travels_as: ClassVar[str] = ""

    event_id: str = field(default_factory=_new_id, kw_only=True)
    occurred_at: str = field(default_factory=_now, kw_only=True)

    @property
    def routing_key(self) -> str:
        return self.travels_as or str(self.type)

    def headers(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION}

    def to_data(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        raise NotImplementedError

    def encode(self) -> bytes:
        return dumps(
            {
                "id": self.event_id,
                "type": str(self.type),
                "schema": SCHEMA_VERSION,
                "occurred_at": self.occurred_at,
                "data": self.to_data(),
            }
        )


CONTRACTS: dict[EventType, type[Contract]] = {}


def _contract(cls: type[Contract]) -> type[Contract]:
    CONTRACTS[cls.type] = cls
    return cls


def owners_of(routing_key: str) -> set[type[Contract]]:
    """The contracts that publish with `routing_key`: empty if no contract owns it."""
    if routing_key.startswith("user."):
        try:
            uuid.UUID(routing_key.removeprefix("user."))
        except ValueError:
            return set()
        return {BidUpdated, OfferSold, OfferEnded}
    return {c for c in CONTRACTS.values() if (c.travels_as or str(c.type)) == routing_key}


def decode(body: bytes) -> Contract:
    """The contract a message body holds; MalformedEvent (with the reason) if it holds none."""
    try:
        raw = loads(body)
        if not isinstance(raw, dict):
            raise MalformedEvent("not a JSON object")
        schema = raw.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise MalformedEvent(f"unknown schema version {schema!r}")
        kind = EventType(raw["type"])
        data = raw["data"]
        if not isinstance(data, dict):
            raise MalformedEvent("data is not an object")
        return CONTRACTS[kind].from_data(data, str(raw["id"]), str(raw["occurred_at"]))
    except MalformedEvent:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedEvent(f"not an event: {exc!r}") from None


# --- field checks shared by the contracts -------------------------------------------------------


def _uuid(value: Any, name: str) -> uuid.UUID:
    """A UUID as asyncpg makes them (a `uuid.UUID` parsed, hashed and compared in C: the stdlib's
    took a tenth of the worker's apply path, three per bid and every set and sort of them), or the
    stdlib's for the forms only it reads (braces, `urn:uuid:`); MalformedEvent if neither reads it."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            parsed: uuid.UUID = FastUUID(value)
            return parsed
        except ValueError:
            pass
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise MalformedEvent(f"{name} is not a UUID") from None


def _decimal(value: Any, name: str) -> Decimal:
    """An amount as a Decimal, its bounds not checked yet (`money` checks them), or MalformedEvent."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MalformedEvent(f"{name} is not an amount")
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise MalformedEvent(f"{name} is not an amount") from None


def money(value: Any, name: str) -> Decimal:
    """An amount of the public API's money, exactly, or MalformedEvent."""
    amount = _decimal(value, name)
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity
        raise MalformedEvent(f"{name} is not a finite amount")
    if amount <= 0 or amount >= MONEY_LIMIT or exponent < -2:
        raise MalformedEvent(f"{name} must be > 0, < 10^12, with at most 2 decimals")
    return amount


def _time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise MalformedEvent(f"{name} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"{name} has no UTC offset")
    return moment


def _offer(value: Any, name: str = "offer") -> dict[str, Any]:
    """A public offer view: an object with a UUID id and, when present, an integer version ≥ 1."""
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{name} is not an object")
    _uuid(value.get("id"), f"{name}.id")
    version = value.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise MalformedEvent(f"{name}.version must be an integer >= 1")
    if "reserve_price" in value:
        raise MalformedEvent(f"{name} carries the reserve, which only its seller may see")
    return dict(value)


def _bid(value: Any, *, private: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvent("bid is not an object")
    _uuid(value.get("id"), "bid.id")
    if not private and value.get("max_price") is not None:
        raise MalformedEvent("a public bid carries its max_price, which only its bidder may see")
    return dict(value)


# --- offer events (public, fanned out by every gateway) ------------------------------------------


@dataclass(frozen=True)
class OfferEvent(Contract):
    """An event about one offer, carrying the offer as the public sees it (never the reserve)."""

    offer: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "offer", _offer(self.offer))

    @property
    def offer_id(self) -> str:
        return str(self.offer["id"])

    @property
    def version(self) -> int | None:
        version = self.offer.get("version")
        return version if isinstance(version, int) else None

    def to_data(self) -> dict[str, Any]:
        return dict(self.offer)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        return cls(_offer(data), event_id=event_id, occurred_at=occurred_at)


@_contract
@dataclass(frozen=True)
class OfferCreated(OfferEvent):
    type: ClassVar[EventType] = EventType.OFFER_CREATED


@_contract
@dataclass(frozen=True)
class OfferUpdated(OfferEvent):
    """A new version of a live offer: its price, leader or end moved."""

    type: ClassVar[EventType] = EventType.OFFER_UPDATED


@_contract
@dataclass(frozen=True)
class OfferEnded(OfferEvent):
    """The offer closed unsold (`end_reason` says why). With a recipient, the seller's own copy."""

    type: ClassVar[EventType] = EventType.OFFER_ENDED
    recipient: uuid.UUID | None = None

    @property
    def routing_key(self) -> str:
        return private_key(self.recipient) if self.recipient else str(self.type)

    def to_data(self) -> dict[str, Any]:
        data = dict(self.offer)
        if self.recipient is not None:
            data = {"offer": data, "recipient": str(self.recipient)}
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        if "recipient" in data:
            return cls(
                _offer(data.get("offer")),
                recipient=_uuid(data["recipient"], "recipient"),
                event_id=event_id,
                occurred_at=occurred_at,
            )
        return cls(_offer(data), event_id=event_id, occurred_at=occurred_at)


@_contract
@dataclass(frozen=True)
class OfferSold(OfferEvent):
    """The offer sold: accepted by its seller or closed with a winner. With a recipient, the
    seller's own copy."""

    type: ClassVar[EventType] = EventType.OFFER_SOLD
    bid: Mapping[str, Any] = field(default_factory=dict)
    recipient: uuid.UUID | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "bid", _bid(self.bid, private=False))

    @property
    def routing_key(self) -> str:
        return private_key(self.recipient) if self.recipient else str(self.type)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"offer": dict(self.offer), "bid": dict(self.bid)}
        if self.recipient is not None:
            data["recipient"] = str(self.recipient)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        recipient = data.get("recipient")
        return cls(
            _offer(data.get("offer")),
            bid=_bid(data.get("bid"), private=False),
            recipient=_uuid(recipient, "recipient") if recipient is not None else None,
            event_id=event_id,
            occurred_at=occurred_at,
        )


# --- private events (to every socket of one user) -----------------------------------------------


class BidChange(NamedTuple):
    """One bid of the recipient as it now stands, and its offer as the public sees it."""

    bid: Mapping[str, Any]
    offer: Mapping[str, Any]


# A batch can move many bids of one bidder (a worker batch holds up to 1,000): they go out in
# messages of at most this many changes, so no message grows without bound.
MAX_BID_CHANGES = 100


@_contract
@dataclass(frozen=True)
class BidUpdated(Contract):
    """Some of the recipient's bids changed status, in this order; each `bid` may show the
    recipient's own max_price. The gateway sends one `bidUpdated` frame per change.

    The worker judges bids in batches and sends one message per bidder and batch (a batch of 1,000
    bids from 200 bidders makes 200 messages, not 1,400): every message costs the outbox, the relay
    and the broker the same whatever it carries. A message of the earlier form, one `bid` and one
    `offer`, still decodes (as one change)."""

    type: ClassVar[EventType] = EventType.BID_UPDATED
    recipient: uuid.UUID
    changes: tuple[BidChange, ...]

    def __post_init__(self) -> None:
        if not self.changes or len(self.changes) > MAX_BID_CHANGES:
            raise MalformedEvent(f"a bid.updated carries 1 to {MAX_BID_CHANGES} changes")
        # What a message brings is checked change by change in from_data; the worker makes these from
        # its own rows (shapes.py), a thousand per batch, so here only what must never travel is.
        for change in self.changes:
            if "reserve_price" in change.offer:
                raise MalformedEvent("offer carries the reserve, which only its seller may see")

    @classmethod
    def one(cls, recipient: uuid.UUID, bid: Mapping[str, Any], offer: Mapping[str, Any]) -> BidUpdated:
        return cls(recipient, (BidChange(bid, offer),))

    @property
    def routing_key(self) -> str:
        return private_key(self.recipient)

    def to_data(self) -> dict[str, Any]:
        return {
            "recipient": str(self.recipient),
            "changes": [{"bid": dict(c.bid), "offer": dict(c.offer)} for c in self.changes],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        raw = data.get("changes")
        if raw is None:  # the earlier form: one change
            raw = [{"bid": data.get("bid"), "offer": data.get("offer")}]
        if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
            raise MalformedEvent("changes is not a list of objects")
        return cls(
            _uuid(data.get("recipient"), "recipient"),
            tuple(BidChange(_bid(c.get("bid"), private=True), _offer(c.get("offer"))) for c in raw),
            event_id=event_id,
            occurred_at=occurred_at,
        )


def bid_changes(recipient: uuid.UUID, changes: Sequence[BidChange]) -> list[BidUpdated]:
    """The messages that tell `recipient` of `changes`, in order, at most MAX_BID_CHANGES each."""
    return [
        BidUpdated(recipient, tuple(changes[i : i + MAX_BID_CHANGES]))
        for i in range(0, len(changes), MAX_BID_CHANGES)
    ]


# --- work for an offer's shard -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ShardWork(Contract):
    """A message for the single active consumer of its offer's shard (hashed on `offer_id`)."""

    mandatory: ClassVar[bool] = True

    offer_id: uuid.UUID

    def headers(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "offer_id": str(self.offer_id)}


@_contract
@dataclass(frozen=True, kw_only=True)
class BidPlaced(ShardWork):
    """A bid received by intake (its `placed_at` is the receipt time that judges it)."""

    type: ClassVar[EventType] = EventType.BID_PLACED

    bid_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    bid_price: Decimal
    placed_at: datetime
    # The most the bidder lets the system bid for them (a proxy bid); None for a straight bid.
    max_price: Decimal | None = None
    # Both derived in __post_init__ (no default factory: a uuid4 and a clock read per bid, thrown away).
    event_id: str = ""
    occurred_at: str = ""

    def __post_init__(self) -> None:
        # The bid id doubles as the event id: a redelivered bid is recognised by it.
        object.__setattr__(self, "event_id", str(self.bid_id))
        object.__setattr__(self, "occurred_at", self.placed_at.isoformat())
        if not 1 <= len(self.username) <= MAX_USERNAME:
            raise MalformedEvent("username must be 1 to 32 characters")
        money(self.bid_price, "bid_price")
        if self.placed_at.tzinfo is None:
            raise MalformedEvent("placed_at has no UTC offset")
        if self.max_price is not None:
            money(self.max_price, "max_price")
            if self.max_price < self.bid_price:
                raise MalformedEvent("max_price is below bid_price")

    @property
    def ceiling(self) -> Decimal:
        """The most this bid may be raised to: its max_price, or its price for a straight bid."""
        return self.max_price if self.max_price is not None else self.bid_price

    def to_data(self) -> dict[str, Any]:
        return {
            "bid_id": self.event_id,  # str(bid_id), made once in __post_init__
            "offer_id": str(self.offer_id),
            "user_id": str(self.user_id),
            "username": self.username,
            # Strings keep amounts exact across the wire.
            "bid_price": str(self.bid_price),
            "max_price": str(self.max_price) if self.max_price is not None else None,
            "placed_at": self.occurred_at,  # placed_at.isoformat(), likewise
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        username = data.get("username")
        if not isinstance(username, str):
            raise MalformedEvent("username is not a string")
        max_price = data.get("max_price")
        return cls(
            offer_id=_uuid(data.get("offer_id"), "offer_id"),
            bid_id=_uuid(data.get("bid_id"), "bid_id"),
            user_id=_uuid(data.get("user_id"), "user_id"),
            username=username,
            # Converted here, checked once by __post_init__.
            bid_price=_decimal(data.get("bid_price"), "bid_price"),
            placed_at=_time(data.get("placed_at"), "placed_at"),
            max_price=_decimal(max_price, "max_price") if max_price is not None else None,
        )


@_contract
@dataclass(frozen=True, kw_only=True)
class CloseOffer(ShardWork):
    """Close the offer if it is live and its `ends_at` (plus the grace) has passed; any replica may
    send it, any number of times: the shard's consumer decides once."""

    type: ClassVar[EventType] = EventType.CLOSE_OFFER

    def to_data(self) -> dict[str, Any]:
        return {"offer_id": str(self.offer_id)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        return cls(
            offer_id=_uuid(data.get("offer_id"), "offer_id"), event_id=event_id, occurred_at=occurred_at
        )


# The most bids one `BidsPlaced` may hold (intake sends at most `bids.batching.MAX_BIDS_SENT_TOGETHER`).
MAX_BIDS_PER_MESSAGE = 1000


@_contract
@dataclass(frozen=True, kw_only=True)
class BidsPlaced(ShardWork):
    """Bids for one offer that intake received together, in the order received: one message, one
    confirm and one delivery for all of them. It travels as `bid.placed`, beside single bids, so it
    takes the same binding to the offer's shard. Its worker applies the bids as if each had come
    alone, one after the other; a bid it can never apply goes to the dead-letter queue on its own."""

    type: ClassVar[EventType] = EventType.BIDS_PLACED
    travels_as: ClassVar[str] = str(EventType.BID_PLACED)

    bids: tuple[BidPlaced, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.bids) <= MAX_BIDS_PER_MESSAGE:
            raise MalformedEvent(f"bids must hold 1 to {MAX_BIDS_PER_MESSAGE} bids")
        for index, bid in enumerate(self.bids):
            if bid.offer_id != self.offer_id:
                raise MalformedEvent(f"bids[{index}] is for another offer")

    def to_data(self) -> dict[str, Any]:
        return {"offer_id": str(self.offer_id), "bids": [bid.to_data() for bid in self.bids]}

    @classmethod
    def from_data(cls, data: Mapping[str, Any], event_id: str, occurred_at: str) -> Contract:
        items = data.get("bids")
        if not isinstance(items, list):
            raise MalformedEvent("bids is not a list")
        if not 1 <= len(items) <= MAX_BIDS_PER_MESSAGE:
            raise MalformedEvent(f"bids must hold 1 to {MAX_BIDS_PER_MESSAGE} bids")
        bids = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise MalformedEvent(f"bids[{index}] is not an object")
            try:
                bid = BidPlaced.from_data(item, "", "")
            except MalformedEvent as exc:
                raise MalformedEvent(f"bids[{index}]: {exc}") from None
            assert isinstance(bid, BidPlaced)
            bids.append(bid)
        return cls(
            offer_id=_uuid(data.get("offer_id"), "offer_id"),
            bids=tuple(bids),
            event_id=event_id,
            occurred_at=occurred_at,
        )
