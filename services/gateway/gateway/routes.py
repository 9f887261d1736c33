"""The gateway's route table: which service owns which public route."""

from aiohttp import web

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
    for offer in ("/v1/offer", "/v1/offers"):
        r.add_post(offer, forward(OFFERS))
        r.add_get(offer, forward(OFFERS))
        r.add_get(offer + "/{offer_id}", forward(OFFERS))
        r.add_get(offer + "/{offer_id}/bids", forward(BIDS))
    for bid in ("/v1/bid", "/v1/bids"):
        r.add_post(bid, forward(BIDS))
        r.add_get(bid, forward(BIDS))
        r.add_get(bid + "/{bid_id}", forward(BIDS))
        # The sale changes the offer, so the offers service owns accepting a bid.
        r.add_put(bid + "/{bid_id}", forward(OFFERS))
