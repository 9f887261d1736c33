"""CORS for browser pages on other origins: only the origins listed in CORS_ORIGINS may call the API.

A small middleware instead of aiohttp-cors: that library wants every route registered with it one by
one, and all the gateway needs is one origin list for every route. Tokens travel in the
Authorization header, never in cookies, so credentials are not allowed and `*` is safe to offer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from auction_shared.problems import problem_response

ALLOWED_METHODS = "GET, POST, PUT, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
# Response headers a page's script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = "X-Total-Count, Location, Retry-After, Idempotent-Replayed, WWW-Authenticate"
PREFLIGHT_MAX_AGE = "600"

ORIGINS = web.AppKey("cors_origins", tuple)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def allowed_origin(request: web.Request) -> str | None:
    """The request's Origin if CORS_ORIGINS lets it in ('*' lets any in), else None."""
    origin = request.headers.get("Origin")
    origins = request.app[ORIGINS]
    if origin is None or not origins:
        return None
    return origin if origin in origins or "*" in origins else None


@web.middleware
async def preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `OPTIONS` preflights of existing routes; everything else goes to its handler."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return await handler(request)
    matched = request.match_info.http_exception
    if matched is not None and matched.status == 404:
        return await handler(request)  # no such route: the usual 404 problem
    if allowed_origin(request) is None:
        return problem_response(403, "cross-origin requests from this origin are not allowed")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


async def _add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    # On every answer, errors included, so a page can read a problem document too.
    origin = allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if request.app[ORIGINS]:
        response.headers.add("Vary", "Origin")  # caches must not hand one origin's answer to another


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """With no origins configured, no CORS header is ever sent (same-origin pages only)."""
    app[ORIGINS] = origins
    app.middlewares.append(preflight_middleware)
    if origins:  # without any, the hook would add nothing to any answer: not run at all
        app.on_response_prepare.append(_add_cors_headers)
