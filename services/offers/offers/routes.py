"""The offers service's route table (plural aliases answer the same)."""

from aiohttp import web

from . import handlers, sale


def setup_routes(app: web.Application) -> None:
    for base in ("/v1/offer", "/v1/offers"):
        app.router.add_post(base, handlers.create_offer)
        app.router.add_get(base, handlers.list_offers)
        app.router.add_get(base + "/{offer_id}", handlers.get_offer)
    for base in ("/v1/bid", "/v1/bids"):
        app.router.add_put(base + "/{bid_id}", sale.accept_bid)
    app.router.add_get("/health", handlers.health)
