"""`python -m offers` runs the offers service."""

from auction_shared.web import serve

from .app import create_app

serve("offers", create_app, lambda s: s.offers_port)
