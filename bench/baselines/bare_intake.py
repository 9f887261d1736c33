"""A bare aiohttp app that reads a JSON body and answers 202: the ceiling of one Python HTTP hop.

`BARE_PORT=9101 python -m bench.baselines.bare_intake`
"""

from __future__ import annotations

import orjson
from aiohttp import web

from bench.baselines import serve

ACCEPTED = orjson.dumps({"status": "pending"})


async def accept(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(body=ACCEPTED, status=202, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/bid", accept)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    serve(create_app(), "bare intake")
