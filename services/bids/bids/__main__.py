"""`python -m bids` runs the bids service."""

from auction_shared.web import serve

from .app import create_app

serve("bids", create_app, lambda s: s.bids_port)
