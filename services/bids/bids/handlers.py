"""Bid reads of the bids service (intake is in intake.py)."""

from __future__ import annotations

from aiohttp import web

from auction_shared.db import DB_POOL
from auction_shared.health import broker_connected, database_answers, health_handler
from auction_shared.jsonio import json_response
from auction_shared.problems import Problem
from auction_shared.shapes import bid_shape
from auction_shared.validation import parse_uuid
from auction_shared.web import identity, page_params

from . import store


async def get_bid(request: web.Request) -> web.Response:
    who = identity(request)
    bid_id = parse_uuid(request.match_info["bid_id"], "bid")
    row = await store.get_bid_for(request.app[DB_POOL], bid_id, who.user_id)
    if row is None:
        raise Problem(404, f"no bid with id {bid_id} that you placed or received")
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


async def my_bids(request: web.Request) -> web.Response:
    """GET /v1/bid: the caller's own bids, pending ones too, newest first."""
    who = identity(request)
    page, size = page_params(request)
    rows, total = await store.list_own_bids(request.app[DB_POOL], who.user_id, page, size)
    return json_response([bid_shape(r, who.user_id) for r in rows], headers={"X-Total-Count": str(total)})


health = health_handler({"postgres": database_answers, "rabbitmq": broker_connected})
