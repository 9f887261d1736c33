"""The gateway's own handlers: liveness and health."""
from __future__ import annotations

from functools import partial

from aiohttp import web

from auction_shared.jsonio import json_response
from auction_shared.web import health_handler

from .proxy import AUTH, BIDS, OFFERS, upstream_healthy


async def ping(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


health = health_handler(
    {name: partial(upstream_healthy, upstream=name) for name in (AUTH, OFFERS, BIDS)}
)
