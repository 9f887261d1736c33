"""Forwarding a public request to the service that owns it, over one pooled client session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import aiohttp
from aiohttp import web

from auction_shared.client_address import client_address
from auction_shared.config import Settings
from auction_shared.observability import request_id
from auction_shared.problems import DependencyDown
from auction_shared.web import SETTINGS, identity

log = logging.getLogger(__name__)

Upstream = Literal["auth", "offers", "bids"]
AUTH: Upstream = "auth"
OFFERS: Upstream = "offers"
BIDS: Upstream = "bids"

SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
BASE_URLS = web.AppKey("upstream_urls", dict)

# Request headers a service needs; everything else stays at the gateway.
FORWARD_REQUEST = ("Authorization", "Content-Type", "Idempotency-Key", "Accept", "X-Request-Id")
# Response headers a client needs; hop-by-hop and server headers are not passed back.
FORWARD_RESPONSE = (
    "Content-Type",
    "X-Total-Count",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
    "Allow",
    "Idempotent-Replayed",
)


def upstreams(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.dependency_timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        app[SESSION] = session
        app[BASE_URLS] = {AUTH: settings.auth_url, OFFERS: settings.offers_url, BIDS: settings.bids_url}
        yield
        await session.close()

    return ctx


def forward(upstream: Upstream, *, public: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that checks the token (unless `public`) and relays the request to `upstream`."""

    async def handler(request: web.Request) -> web.Response:
        if not public:
            identity(request)  # 401 here, before the request costs a hop
        body = await request.read() if request.body_exists else None
        headers = {h: request.headers[h] for h in FORWARD_REQUEST if h in request.headers}
        headers["X-Forwarded-For"] = client_address(request, request.app[SETTINGS].trusted_proxy_hops)
        headers[request_id.HEADER] = request_id.current() or request_id.new()
        url = request.app[BASE_URLS][upstream] + request.rel_url.raw_path_qs
        try:
            async with request.app[SESSION].request(
                request.method, url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                payload = await resp.read()
                out = {h: resp.headers[h] for h in FORWARD_RESPONSE if h in resp.headers}
                return web.Response(body=payload, status=resp.status, headers=out)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            log.warning("%s service unreachable for %s %s: %r", upstream, request.method, request.path, exc)
            raise DependencyDown(f"the {upstream} service") from None

    return handler


async def fetch(app: web.Application, upstream: Upstream, path_qs: str, token: str) -> tuple[int, bytes]:
    """GET `path_qs` from `upstream` as the token's owner, on the pooled session (the WebSocket's reads)."""
    url = app[BASE_URLS][upstream] + path_qs
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if (rid := request_id.current()) is not None:
        headers[request_id.HEADER] = rid
    try:
        async with app[SESSION].get(url, headers=headers, allow_redirects=False) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
        log.warning("%s service unreachable for GET %s: %r", upstream, path_qs, exc)
        raise DependencyDown(f"the {upstream} service") from None


async def upstream_healthy(app: web.Application, upstream: Upstream) -> bool:
    url = app[BASE_URLS][upstream] + "/health"
    timeout = aiohttp.ClientTimeout(total=app[SETTINGS].dependency_timeout)
    try:
        async with app[SESSION].get(url, timeout=timeout) as resp:
            await resp.read()
            return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
