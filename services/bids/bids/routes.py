"""The bids service's route table (plural aliases answer the same)."""

from aiohttp import web

from auction_shared.route_aliases import Route, add_routes

from . import handlers, intake

ROUTES: list[Route] = [
    ("POST", "/v1/bid", intake.place_bid),
    ("GET", "/v1/bid", handlers.my_bids),
    ("GET", "/v1/bid/{bid_id}", handlers.get_bid),
    ("GET", "/v1/offer/{offer_id}/bids", handlers.list_bids),
    ("GET", "/health", handlers.health),
]


def setup_routes(app: web.Application) -> None:
    add_routes(app, ROUTES)
