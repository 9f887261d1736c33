"""The gateway's route table: which service owns which public route."""

from aiohttp import web

from auction_shared.route_aliases import add_aliased

from . import handlers
from .openapi import openapi_spec
from .proxy import AUTH, BIDS, OFFERS, forward
from .stream import stream


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/ping", handlers.ping)
    r.add_get("/health", handlers.health)
    r.add_get("/index", handlers.index)
    r.add_get("/openapi.json", openapi_spec)
    r.add_static("/static/", handlers.STATIC_DIR)
    r.add_get("/v1/stream", stream)
    r.add_post("/v1/signup", forward(AUTH, public=True))
    r.add_post("/v1/login", forward(AUTH, public=True))
    add_aliased(r.add_post, "/v1/offer", forward(OFFERS))
    add_aliased(r.add_get, "/v1/offer", forward(OFFERS))
    add_aliased(r.add_get, "/v1/offer/{offer_id}", forward(OFFERS))
    add_aliased(r.add_get, "/v1/offer/{offer_id}/bids", forward(BIDS))
    add_aliased(r.add_post, "/v1/bid", forward(BIDS))
    add_aliased(r.add_get, "/v1/bid", forward(BIDS))
    add_aliased(r.add_get, "/v1/bid/{bid_id}", forward(BIDS))
    # The sale changes the offer, so the offers service owns accepting a bid.
    add_aliased(r.add_put, "/v1/bid/{bid_id}", forward(OFFERS))
