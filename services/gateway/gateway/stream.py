"""`GET /v1/stream`: the upgrade (origin, the cap on sockets), then one socket's read loop; the
protocol itself is session.py, the outgoing side the socket's Watcher, fed by the hub."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from auction_shared.problems import Problem
from auction_shared.web import SETTINGS

from . import frames
from .hub import HUB
from .session import CLOSE_REFUSED, StreamSession
from .watcher import Watcher

# Larger client messages close the socket with 1009 (aiohttp does it); the same bound as HTTP bodies.
MAX_MESSAGE_BYTES = 64 * 1024


def check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """403 before the upgrade for a browser page from an origin the operator did not allow.

    Browsers always send Origin on a WebSocket handshake and let any page open one, cookies or not:
    the list stops other sites' pages from using a visitor's browser. Clients that send no Origin
    (programs, not browsers) and the gateway's own /index page (same host) are always let in.
    """
    origin = request.headers.get("Origin")
    if not allowed or origin is None or origin in allowed:
        return
    if urlsplit(origin).netloc == request.host:
        return
    raise Problem(403, f"WebSocket connections from origin {origin} are not allowed")


async def stream(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    check_origin(request, settings.ws_allowed_origins)
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_seconds or None,
        max_msg_size=MAX_MESSAGE_BYTES,
        # Per-message deflate halves fan-out throughput (docs/LIMITS.md): every frame would be compressed
        # once per socket, which undoes serialising each event once. Offer events are a few hundred
        # bytes, so compression saves little on the wire; browsers that offer it are told no.
        # hub.Watcher.send relies on it: its fast path writes uncompressed frames to the transport.
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        raise Problem(426, "GET /v1/stream expects a WebSocket upgrade", headers={"Upgrade": "websocket"})
    await ws.prepare(request)
    hub = request.app[HUB]
    if hub.connected >= settings.ws_max_sockets:
        # Refused before it costs a watcher: the error, then the close, on the bare socket.
        await ws.send_str(frames.error_frame("too many sockets on this server, retry later").decode())
        await ws.close(code=CLOSE_REFUSED, message=b"too many sockets")
        return ws
    watcher = Watcher(ws, request, settings.ws_client_queue, settings.ws_client_queue_bytes)
    hub.connect(watcher)
    session = StreamSession(request.app, hub, watcher)
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await session.on_text(message.data)
            elif message.type is WSMsgType.BINARY:
                session.on_binary()
            else:  # an ERROR: aiohttp has closed the socket already (e.g. 1009 for a too large message)
                break
            if watcher.closing:
                break
    finally:
        session.stop()
        hub.disconnect(watcher)
        await watcher.finish()
    return ws
