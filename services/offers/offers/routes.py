"""The offers service's route table (plural aliases answer the same)."""

from aiohttp import web

from auction_shared.route_aliases import add_aliased

from . import handlers, sale


def setup_routes(app: web.Application) -> None:
    r = app.router
    add_aliased(r.add_post, "/v1/offer", handlers.create_offer)
    add_aliased(r.add_get, "/v1/offer", handlers.list_offers)
    add_aliased(r.add_get, "/v1/offer/{offer_id}", handlers.get_offer)
    add_aliased(r.add_put, "/v1/bid/{bid_id}", sale.accept_bid)
    r.add_get("/health", handlers.health)
