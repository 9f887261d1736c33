"""PUT /v1/bid/{id}: the seller accepts the leading bid and the offer is sold."""

from __future__ import annotations

from aiohttp import web

from auction_shared.db import DB_POOL
from auction_shared.events import BidUpdated, OfferSold
from auction_shared.jsonio import json_response
from auction_shared.outbox import RELAY
from auction_shared.problems import Problem
from auction_shared.shapes import bid_shape, offer_shape
from auction_shared.validation import parse_uuid
from auction_shared.web import identity

from . import store
from .rules import why_not_for_sale


async def accept_bid(request: web.Request) -> web.Response:
    who = identity(request)
    bid_id = parse_uuid(request.match_info["bid_id"], "bid")
    pool = request.app[DB_POOL]
    # Ownership first, with no lock: otherwise anyone could hold a busy offer's lock with PUTs.
    found = await store.seller_of_bid(pool, bid_id)
    if found is None:
        raise Problem(404, f"no bid with id {bid_id}")
    offer_id, seller = found
    if seller != who.user_id:
        raise Problem(403, "only the offer's creator may accept a bid on it")
    relay = request.app[RELAY]
    async with pool.acquire() as conn, conn.transaction():
        offer, bid, past_end = await store.lock_for_sale(conn, offer_id, bid_id)
        refusal = why_not_for_sale(offer, bid, past_end)
        if refusal is not None:
            raise Problem(409, refusal)
        sold, accepted = await store.sell(conn, offer_id, bid_id)
        public_offer, public_bid = offer_shape(sold), bid_shape(accepted)
        await relay.add(conn, OfferSold(public_offer, bid=public_bid))
        await relay.add(conn, OfferSold(public_offer, bid=public_bid, recipient=seller))
        await relay.add(
            conn,
            BidUpdated.one(accepted["user_id"], bid_shape(accepted, accepted["user_id"]), public_offer),
        )
    relay.wake()
    return json_response(bid_shape(accepted, who.user_id))
