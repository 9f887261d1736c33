"""The offers service's route table (plural aliases answer the same)."""

from aiohttp import web

from auction_shared.route_aliases import Route, add_routes

from . import handlers, sale

ROUTES: list[Route] = [
    ("POST", "/v1/offer", handlers.create_offer),
    ("GET", "/v1/offer", handlers.list_offers),
    ("GET", "/v1/offer/{offer_id}", handlers.get_offer),
    ("PUT", "/v1/bid/{bid_id}", sale.accept_bid),
    ("GET", "/health", handlers.health),
]


def setup_routes(app: web.Application) -> None:
    add_routes(app, ROUTES)
