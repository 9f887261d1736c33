"""A bare aiohttp WebSocket broadcast: every socket gets the same pre-serialised frame in one loop.

POST /v1/offer takes an offer's JSON, gives it a fresh id, answers 201, then sends
`{"event": "offerCreated", "data": offer}` to every socket that said anything (its `authenticate`).
No token check, no queues, no broker: the ceiling the gateway's hub is measured against.

`BARE_PORT=9103 python -m bench.baselines.bare_broadcast`
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiohttp import WSMsgType, web

from bench.baselines import serve

CLIENTS = web.AppKey("clients", set)
AUTHENTICATED = orjson.dumps({"event": "authenticated", "data": {}})


async def stream(request: web.Request) -> web.WebSocketResponse:
    # No per-message deflate, as the gateway decides (docs/LIMITS.md: it halves fan-out).
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    clients = request.app[CLIENTS]
    async for message in ws:
        if message.type is WSMsgType.TEXT and ws not in clients:
            await ws.send_frame(AUTHENTICATED, WSMsgType.TEXT)
            clients.add(ws)
    clients.discard(ws)
    return ws


async def broadcast(clients: set[web.WebSocketResponse], frame: bytes) -> None:
    for ws in list(clients):
        if not ws.closed:
            await ws.send_frame(frame, WSMsgType.TEXT)


async def create_offer(request: web.Request) -> web.Response:
    offer = orjson.loads(await request.read())
    offer["id"] = str(uuid.uuid4())
    frame = orjson.dumps({"event": "offerCreated", "data": offer})
    asyncio.get_running_loop().create_task(broadcast(request.app[CLIENTS], frame))
    return web.Response(body=orjson.dumps(offer), status=201, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app[CLIENTS] = set()
    app.router.add_get("/v1/stream", stream)
    app.router.add_post("/v1/offer", create_offer)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    serve(create_app(), "bare broadcast")
