"""The bids service's route table (plural aliases answer the same)."""

from aiohttp import web

from auction_shared.route_aliases import add_aliased

from . import handlers, intake


def setup_routes(app: web.Application) -> None:
    r = app.router
    add_aliased(r.add_post, "/v1/bid", intake.place_bid)
    add_aliased(r.add_get, "/v1/bid", handlers.my_bids)
    add_aliased(r.add_get, "/v1/bid/{bid_id}", handlers.get_bid)
    add_aliased(r.add_get, "/v1/offer/{offer_id}/bids", handlers.list_bids)
    r.add_get("/health", handlers.health)
