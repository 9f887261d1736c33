"""The bids service's route table (plural aliases answer the same)."""

from aiohttp import web

from . import handlers, intake


def setup_routes(app: web.Application) -> None:
    for base in ("/v1/bid", "/v1/bids"):
        app.router.add_post(base, intake.place_bid)
        app.router.add_get(base, handlers.my_bids)
        app.router.add_get(base + "/{bid_id}", handlers.get_bid)
    for base in ("/v1/offer", "/v1/offers"):
        app.router.add_get(base + "/{offer_id}/bids", handlers.list_bids)
    app.router.add_get("/health", handlers.health)
