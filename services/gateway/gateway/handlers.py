"""The gateway's own handlers: liveness, health and the /index page."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from aiohttp import web

from auction_shared.health import health_handler
from auction_shared.jsonio import json_response

from .offer_feed import feed_is_up
from .proxy import AUTH, BIDS, OFFERS, upstream_healthy

STATIC_DIR = Path(__file__).parent / "static"
# The page loads only its own script and style and talks only to this gateway (fetch and WebSocket).
INDEX_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


async def ping(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


health = health_handler(
    {
        **{name: partial(upstream_healthy, upstream=name) for name in (AUTH, OFFERS, BIDS)},
        # Without it the API still answers, but no live update reaches a WebSocket.
        "rabbitmq": feed_is_up,
    }
)


async def index(request: web.Request) -> web.FileResponse:
    """The page for trying the API and the live updates by hand (plain HTML and JS, no build step)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=INDEX_HEADERS)
