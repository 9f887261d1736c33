"""Handlers of the bids service: parse, check, publish or read, answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from auction_shared.broker import PUBLISHER
from auction_shared.db import DB_POOL
from auction_shared.events import BidPlaced
from auction_shared.health import broker_connected, database_answers, health_handler
from auction_shared.jsonio import json_response
from auction_shared.observability.metrics import BIDS_RECEIVED, BIDS_REJECTED
from auction_shared.problems import Problem
from auction_shared.shapes import bid_shape
from auction_shared.validation import Money, StrictModel, parse_body, parse_uuid
from auction_shared.web import identity, page_params

from . import store
from .offer_cache import OfferCache

OFFER_CACHE = web.AppKey("offer_cache", OfferCache)
MAX_IDEMPOTENCY_KEY = 200


class NewBid(StrictModel):
    bid_price: Money
    offer_id: str


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise Problem(
            400,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            errors=[{"field": "Idempotency-Key", "message": "must be printable ASCII, 1-200 chars"}],
        )
    return key


def pending_view(bid: BidPlaced) -> dict[str, object]:
    return {
        "id": str(bid.bid_id),
        "offer_id": str(bid.offer_id),
        "bid_price": bid.bid_price,
        "username": bid.username,
        "timestamp": bid.placed_at.isoformat(),
        "status": "pending",
        "reason": None,
        "accepted": False,
        "max_price": bid.max_price,
    }


def _refused(reason: str, status: int, detail: str) -> Problem:
    """A bid turned away at intake, counted by reason."""
    BIDS_REJECTED.labels("intake", reason).inc()
    return Problem(status, detail)


async def place_bid(request: web.Request) -> web.Response:
    who = identity(request)
    try:
        body = await parse_body(request, NewBid)
        key = _idempotency_key(request)
        offer_id = parse_uuid(body.offer_id, "offer")
    except Problem:
        BIDS_REJECTED.labels("intake", "invalid").inc()
        raise
    pool = request.app[DB_POOL]
    if key is not None:
        earlier = await store.find_request(pool, who.user_id, key)
        if earlier is not None:
            return json_response(earlier, status=202, headers={"Idempotent-Replayed": "true"})
    offer = await request.app[OFFER_CACHE].get(offer_id)
    if offer is None:
        raise _refused("no_offer", 404, f"no offer with id {offer_id}")
    if offer.created_by_id == who.user_id:
        raise _refused("own_offer", 403, "you cannot bid on your own offer")
    now = datetime.now(timezone.utc)
    if offer.sold:
        raise _refused("sold", 409, "the offer is sold")
    if offer.ends_at is not None and offer.ends_at <= now:
        raise _refused("closed", 409, "the offer is closed")
    bid = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=offer_id,
        user_id=who.user_id,
        username=who.username,
        bid_price=body.bid_price,
        placed_at=now,
    )
    view = pending_view(bid)
    if key is not None and not await store.claim_request(pool, who.user_id, key, view):
        # A concurrent retry with the same key won the race: answer with its bid.
        earlier = await store.find_request(pool, who.user_id, key)
        return json_response(earlier, status=202, headers={"Idempotent-Replayed": "true"})
    try:
        await request.app[PUBLISHER].send(bid)
    except Problem:
        if key is not None:
            await store.release_request(pool, who.user_id, key)
        raise
    BIDS_RECEIVED.inc()
    return json_response(view, status=202, headers={"Location": f"/v1/bid/{bid.bid_id}"})


async def get_bid(request: web.Request) -> web.Response:
    who = identity(request)
    bid_id = parse_uuid(request.match_info["bid_id"], "bid")
    row = await store.get_bid_for(request.app[DB_POOL], bid_id, who.user_id)
    if row is None:
        raise Problem(404, f"no processed bid with id {bid_id} that you placed or received")
    return json_response(bid_shape(row, who.user_id))


async def list_bids(request: web.Request) -> web.Response:
    who = identity(request)
    offer_id = parse_uuid(request.match_info["offer_id"], "offer")
    page, size = page_params(request)
    pool = request.app[DB_POOL]
    if not await store.offer_exists(pool, offer_id):
        raise Problem(404, f"no offer with id {offer_id}")
    rows, total = await store.list_bids(pool, offer_id, page, size)
    return json_response([bid_shape(r, who.user_id) for r in rows], headers={"X-Total-Count": str(total)})


health = health_handler({"postgres": database_answers, "rabbitmq": broker_connected})
