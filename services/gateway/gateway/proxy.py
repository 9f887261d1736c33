"""Forwarding a public request to the service that owns it, over pooled keep-alive connections.

The path sent on is rebuilt from the route's template and its validated values (ids are UUIDs),
never copied from the client's raw path: no `..`, encoded slash or other trick in a value can make
the service see another route than the one the gateway matched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from aiohttp import web

from auction_shared.client_address import client_address
from auction_shared.config import Settings
from auction_shared.observability import request_id
from auction_shared.observability.tracing import inject_trace
from auction_shared.outages import UPSTREAM_DOWN
from auction_shared.problems import DependencyDown, Problem
from auction_shared.validation import parse_uuid
from auction_shared.web import SETTINGS, identity

from .upstream import Upstream, UpstreamResponse

log = logging.getLogger(__name__)

ServiceName = Literal["auth", "offers", "bids"]
AUTH: ServiceName = "auth"
OFFERS: ServiceName = "offers"
BIDS: ServiceName = "bids"

UPSTREAMS = web.AppKey("upstreams", dict)

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
_FORWARD_RESPONSE_KEYS = tuple((name, name.lower()) for name in FORWARD_RESPONSE)
# What each route value names (a 404 for a malformed one, as the services answer).
ROUTE_IDS = {"offer_id": "offer", "bid_id": "bid"}


# A service bounds each wait on its own dependencies by DEPENDENCY_TIMEOUT and may wait on two in
# turn (intake: the pending record, then the broker's confirm). The gateway waits that long for the
# service's own answer: with one DEPENDENCY_TIMEOUT it answered 503 for bids the service then queued
# (0.2 % of them at `hey -c 1000` in `make bench`, where a 503 is allowed to mean "maybe queued").
UPSTREAM_WAITS = 2


def upstream_timeout(settings: Settings) -> float:
    """How long the gateway waits for a service's answer before a 503."""
    return settings.dependency_timeout * UPSTREAM_WAITS


def upstreams(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = upstream_timeout(settings)
        app[UPSTREAMS] = {
            AUTH: Upstream(settings.auth_url, timeout),
            OFFERS: Upstream(settings.offers_url, timeout),
            BIDS: Upstream(settings.bids_url, timeout),
        }
        yield
        for upstream in app[UPSTREAMS].values():
            upstream.close()

    return ctx


def forwarded_path(request: web.Request) -> str:
    """The matched route's template filled with its checked values, plus the query string."""
    resource = request.match_info.route.resource
    assert resource is not None
    path = resource.canonical
    if request.match_info:
        values = {}
        for name, raw in request.match_info.items():
            what = ROUTE_IDS.get(name)
            if what is None:  # a route value nobody validates is a route added without thought
                raise Problem(404, "no such resource")
            values[name] = str(parse_uuid(raw, what))
        path = path.format_map(values)
    query = request.rel_url.raw_query_string
    return f"{path}?{query}" if query else path


async def _send(
    app: web.Application,
    upstream: ServiceName,
    method: str,
    path_qs: str,
    headers: dict[str, str],
    body: bytes | None,
) -> UpstreamResponse:
    client: Upstream = app[UPSTREAMS][upstream]
    try:
        return await client.request(method, path_qs, headers, body)
    except UPSTREAM_DOWN as exc:
        log.warning("%s service unreachable for %s %s: %r", upstream, method, path_qs.partition("?")[0], exc)
        raise DependencyDown(f"the {upstream} service") from None


def forward(
    upstream: ServiceName, *, public: bool = False
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that checks the token (unless `public`) and relays the request to `upstream`."""

    async def handler(request: web.Request) -> web.Response:
        if not public:
            identity(request)  # 401 here, before the request costs a hop
        path_qs = forwarded_path(request)
        body = await request.read() if request.body_exists else None
        incoming = request.headers
        headers = {h: incoming[h] for h in FORWARD_REQUEST if h in incoming}
        headers["X-Forwarded-For"] = client_address(request, request.app[SETTINGS].trusted_proxy_hops)
        headers[request_id.HEADER] = request_id.current() or request_id.new()
        inject_trace(headers)  # the lean client has no instrumentation: carry the trace by hand
        resp = await _send(request.app, upstream, request.method, path_qs, headers, body)
        got = resp.headers
        out = {name: got[key] for name, key in _FORWARD_RESPONSE_KEYS if key in got}
        return web.Response(body=resp.body, status=resp.status, headers=out)

    return handler


async def fetch(app: web.Application, upstream: ServiceName, path_qs: str, token: str) -> tuple[int, bytes]:
    """GET `path_qs` from `upstream` as the token's owner, on the pooled connections (the WebSocket's reads)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if (rid := request_id.current()) is not None:
        headers[request_id.HEADER] = rid
    inject_trace(headers)
    resp = await _send(app, upstream, "GET", path_qs, headers, None)
    return resp.status, resp.body


async def upstream_healthy(app: web.Application, upstream: ServiceName) -> bool:
    client: Upstream = app[UPSTREAMS][upstream]
    try:
        resp = await client.request("GET", "/health", {})
    except UPSTREAM_DOWN:
        return False
    return resp.status == 200
