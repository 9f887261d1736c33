"""Which sockets an event from the broker goes to, as which frame (docs/API.md, "Auction rules → Events").

- `offerCreated`: every authenticated socket;
- `offerUpdated`, and the public `offerSold` / `offerEnded`: the sockets subscribed to the offer;
- private, routed `user.<id>`: `bidUpdated` (a frame per change a message carries), and the seller's own `offerSold` / `offerEnded`, to every
  socket of that one user, subscribed or not.

A private event is delivered only when the routing key it came with names the recipient in its body,
and a public one only with its public key, so a message cannot reach a user it was not routed to. The
contracts refuse a reserve in any offer and a `max_price` in any bid but the bidder's own `bidUpdated`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from auction_shared.events import (
    BidUpdated,
    Contract,
    OfferCreated,
    OfferEnded,
    OfferEvent,
    OfferSold,
    OfferUpdated,
    private_key,
)

from . import frames
from .hub import About, Hub

log = logging.getLogger(__name__)


def deliver(hub: Hub, event: Contract, routing_key: str) -> int:
    """Queue `event` to the sockets it concerns; return how many took it."""
    if isinstance(event, BidUpdated):
        if routing_key != private_key(event.recipient):
            return _misrouted(event, routing_key)
        taken = 0
        for change in event.changes:  # one frame per change, in the order the worker judged them
            frame = frames.event_frame(
                frames.BID_UPDATED, {"bid": dict(change.bid), "offer": dict(change.offer)}
            )
            about = About(str(change.offer["id"]), _version(change.offer), frames.BID_UPDATED)
            taken += hub.to_user(event.recipient, frame, about)
        return taken
    if not isinstance(event, OfferEvent):
        return 0  # work for the bid shards, not for sockets (not bound here anyway)
    recipient = event.recipient if isinstance(event, (OfferSold, OfferEnded)) else None
    expected = private_key(recipient) if recipient is not None else str(event.type)
    if routing_key != expected:
        return _misrouted(event, routing_key)
    name, data = _frame_of(event)
    about = About(event.offer_id, event.version, name)
    frame = frames.event_frame(name, data)
    if isinstance(event, OfferCreated):
        return hub.broadcast(frame, about)
    if recipient is not None:
        return hub.to_user(recipient, frame, about)
    if not hub.is_followed(event.offer_id):
        return 0  # the common case on a busy replica: nobody here follows this offer
    return hub.to_followers(event.offer_id, frame, about)


def _frame_of(event: OfferEvent) -> tuple[str, object]:
    """The frame's event name and data: the seller's copy looks exactly like the public one."""
    if isinstance(event, OfferSold):
        return frames.OFFER_SOLD, {"offer": dict(event.offer), "bid": dict(event.bid)}
    if isinstance(event, OfferEnded):
        return frames.OFFER_ENDED, dict(event.offer)
    if isinstance(event, OfferUpdated):
        return frames.OFFER_UPDATED, dict(event.offer)
    return frames.OFFER_CREATED, dict(event.offer)


def _version(offer: Mapping[str, Any]) -> int | None:
    version = offer.get("version")
    return version if isinstance(version, int) else None


def _misrouted(event: Contract, routing_key: str) -> int:
    log.warning("live updates: dropping %s %s that came routed %r", event.type, event.event_id, routing_key)
    return 0
