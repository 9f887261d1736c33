"""POST /v1/bid: check what intake can tell, record the bid pending, queue it with a confirm, answer 202.

The pending row is written before the publish, so the worker never meets it half-written: recorded
after the confirm, it raced the worker's own insert of the same id and waited for the worker's whole
batch to commit (intake fell to a tenth of its rate in `make bench`). A publish that fails (503,
maybe queued) removes the row again unless the worker already decided the bid; if the bid reached the
queue after all, the worker writes its row from the message.

Idempotency-Key: a claimed key is never released. A retry with the key republishes the bid it names
(same id, same receipt time; the worker drops a duplicate id) unless the key notes that the broker
confirmed it or the worker already decided it, so a "202 replayed" always names a bid that is or will
be processed. Keys are kept for
`store.KEY_RETENTION_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg
from aiohttp import web

from auction_shared.db import DB_POOL
from auction_shared.events import BidPlaced, money
from auction_shared.jsonio import json_response
from auction_shared.observability.metrics import BIDS_RECEIVED, BIDS_REJECTED
from auction_shared.problems import DependencyDown, Problem
from auction_shared.validation import Money, StrictModel, parse_body, parse_uuid
from auction_shared.web import SETTINGS, identity

from . import store
from .batching import BidBatches
from .offer_cache import OfferCache
from .pending import PendingRecords

log = logging.getLogger(__name__)

OFFER_CACHE = web.AppKey("offer_cache", OfferCache)
PENDING = web.AppKey("pending_records", PendingRecords)
BATCHES = web.AppKey("bid_batches", BidBatches)
MAX_IDEMPOTENCY_KEY = 200


class NewBid(StrictModel):
    bid_price: Money
    offer_id: str
    # A proxy bid: the most the system may bid for the bidder (None: a straight bid).
    max_price: Money | None = None


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
    """The 202 body: the bid as its bidder sees it before the worker judged it."""
    return {
        "id": bid.event_id,  # the bid id and its receipt time as text, made once by BidPlaced
        "offer_id": str(bid.offer_id),
        "bid_price": bid.bid_price,
        "username": bid.username,
        "timestamp": bid.occurred_at,
        "status": "pending",
        "reason": None,
        "accepted": False,
        "max_price": bid.max_price,
    }


def _named_bid(view: dict[str, Any], user_id: uuid.UUID) -> BidPlaced:
    """The queued bid a stored 202 body describes."""
    max_price = view.get("max_price")
    return BidPlaced(
        bid_id=uuid.UUID(view["id"]),
        offer_id=uuid.UUID(view["offer_id"]),
        user_id=user_id,
        username=view["username"],
        bid_price=money(view["bid_price"], "bid_price"),
        max_price=money(max_price, "max_price") if max_price is not None else None,
        placed_at=datetime.fromisoformat(view["timestamp"]),
    )


def _refused(reason: str, status: int, detail: str, field: str | None = None) -> Problem:
    """A bid turned away at intake, counted by reason."""
    BIDS_REJECTED.labels("intake", reason).inc()
    errors = [{"field": field, "message": detail.removeprefix(field + " ")}] if field else None
    return Problem(status, detail, errors=errors)


async def _queue(request: web.Request, bid: BidPlaced) -> None:
    """Record the bid pending for reads, then publish it with a confirm, in its offer's message of
    this loop turn (batching.py); else a 503 problem."""
    pool = request.app[DB_POOL]
    timeout = request.app[SETTINGS].dependency_timeout
    try:
        await request.app[PENDING].record(bid, timeout)
    except Exception:  # a failed record only delays the bid's reads, never its queueing
        log.warning("bid %s not recorded pending", bid.bid_id, exc_info=True)
    try:
        await request.app[BATCHES].send(bid)
    except DependencyDown:
        # 503, maybe queued: the row goes unless the worker already decided the bid. Should the bid
        # have reached the queue all the same, the worker writes its row from the message.
        try:
            async with asyncio.timeout(timeout):
                await store.forget_pending(pool, bid.bid_id)
        except Exception:
            log.warning("bid %s: publish failed and its pending row stays", bid.bid_id, exc_info=True)
        raise


async def _confirmed(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> None:
    """Note on the key that its bid is queued; if that fails, a replay only publishes it once more."""
    try:
        await store.mark_queued(pool, user_id, key)
    except Exception:
        log.warning("Idempotency-Key's bid queued but not marked so", exc_info=True)


async def _replay(
    request: web.Request, user_id: uuid.UUID, key: str, view: dict[str, Any], asked: BidPlaced
) -> web.Response:
    named = _named_bid(view, user_id)
    if (named.offer_id, named.bid_price, named.max_price) != (
        asked.offer_id,
        asked.bid_price,
        asked.max_price,
    ):
        raise Problem(
            422,
            "this Idempotency-Key was used for another bid; use a new key for a new bid",
            errors=[{"field": "Idempotency-Key", "message": "already names a different bid"}],
        )
    pool = request.app[DB_POOL]
    if not await store.is_queued(pool, user_id, key) and not await store.is_decided(pool, named.bid_id):
        # The first request's publish may have failed, or not ended yet: publish the same bid again
        # (the worker drops a second copy of one id).
        await _queue(request, named)
        await _confirmed(pool, user_id, key)
    return json_response(
        view, status=202, headers={"Idempotent-Replayed": "true", "Location": f"/v1/bid/{named.bid_id}"}
    )


async def place_bid(request: web.Request) -> web.Response:
    who = identity(request)
    try:
        body = await parse_body(request, NewBid)
        key = _idempotency_key(request)
        offer_id = parse_uuid(body.offer_id, "offer")
    except Problem:
        BIDS_REJECTED.labels("intake", "invalid").inc()
        raise
    if body.max_price is not None and body.max_price < body.bid_price:
        raise _refused("invalid", 400, "max_price must be at least bid_price", field="max_price")
    pool = request.app[DB_POOL]
    now = datetime.now(timezone.utc)
    bid = BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=offer_id,
        user_id=who.user_id,
        username=who.username,
        bid_price=body.bid_price,
        max_price=body.max_price,
        placed_at=now,
    )
    if key is not None:
        earlier = await store.find_request(pool, who.user_id, key)
        if earlier is not None:
            return await _replay(request, who.user_id, key, earlier, bid)
    offer = await request.app[OFFER_CACHE].get(offer_id)
    if offer is None:
        raise _refused("no_offer", 404, f"no offer with id {offer_id}")
    if offer.created_by_id == who.user_id:
        raise _refused("own_offer", 403, "you cannot bid on your own offer")
    if offer.status != "live":
        raise _refused(offer.status, 409, f"the offer is {offer.status}")
    if offer.ends_at is not None and offer.ends_at <= now:
        raise _refused("closed", 409, "the offer is closed: its end has passed")
    view = pending_view(bid)
    if key is not None and not await store.claim_request(pool, who.user_id, key, view):
        # A concurrent request with the same key claimed it first: this is a retry of that bid.
        earlier = await store.find_request(pool, who.user_id, key)
        if earlier is None:
            raise Problem(409, "this Idempotency-Key expired just now; retry")
        return await _replay(request, who.user_id, key, earlier, bid)
    await _queue(request, bid)
    if key is not None:
        await _confirmed(pool, who.user_id, key)
    BIDS_RECEIVED.inc()
    return json_response(view, status=202, headers={"Location": f"/v1/bid/{bid.bid_id}"})
