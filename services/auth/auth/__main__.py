"""`python -m auth` runs the auth service."""

from auction_shared.web import serve

from .app import create_app

serve("auth", create_app, lambda s: s.auth_port)
