"""`python -m gateway` runs the gateway."""

from auction_shared.web import serve

from .app import create_app

serve("gateway", create_app, lambda s: s.gateway_port)
