"""A bare one-hop aiohttp proxy over one pooled ClientSession: what any Python gateway costs.

`BARE_PORT=9102 BARE_UPSTREAM=http://127.0.0.1:9101 python -m bench.baselines.bare_proxy`
"""

from __future__ import annotations

import os

import aiohttp
from aiohttp import web

from bench.baselines import serve

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def relay(request: web.Request) -> web.Response:
    body = await request.read()
    async with request.app[SESSION].request(
        request.method,
        request.app[UPSTREAM] + request.rel_url.raw_path_qs,
        data=body,
        headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
    ) as resp:
        return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def session(app: web.Application):
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/bid", relay)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    serve(create_app(os.environ["BARE_UPSTREAM"]), "bare proxy")
