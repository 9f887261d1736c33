"""What the gateway sends on /v1/stream: each frame serialised once, as the UTF-8 bytes of a text frame."""

from __future__ import annotations

from typing import Any

from auction_shared.jsonio import dumps

# Server -> client event names (docs/API.md, Live updates).
AUTHENTICATED = "authenticated"
OFFER_PAGE = "offers"  # the answer to get_offers: one page of offers
OFFER_CREATED = "offerCreated"
OFFER_UPDATED = "offerUpdated"
OFFER_SOLD = "offerSold"
OFFER_ENDED = "offerEnded"
BID_UPDATED = "bidUpdated"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"


def event_frame(name: str, data: Any) -> bytes:
    return dumps({"event": name, "data": data})


def raw_event_frame(name: str, data_json: bytes) -> bytes:
    """A frame around `data_json` that is already JSON (an upstream's body), without parsing it again."""
    return b'{"event":"' + name.encode() + b'","data":' + data_json + b"}"


def error_frame(message: str) -> bytes:
    return dumps({"event": "error", "error": message})
