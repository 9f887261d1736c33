"""One WebSocket client of this replica (a watcher): its bounded outgoing queue and its writer task.

A watcher's frames go through its own bounded queue to its own writer task, so a slow socket only
ever fills its own queue. When that queue is full (in frames or in bytes) the watcher is closed with 1008 instead of being
buffered without limit; the hub never awaits a socket, so one slow peer cannot delay the others.
Frames are bytes serialised once per event; the same object is queued to every watcher. While a
watcher has nothing queued and its socket's buffer is empty, a frame skips the queue and goes to
the socket at once: that is the common case, and it spares a task wake-up per socket per event.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from auction_shared.observability.metrics import WS_SLOW_CLOSED

from .versions import SeenVersions

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = WSCloseCode.POLICY_VIOLATION  # 1008: the peer reads slower than events arrive
# How long a closing handshake may take (the close frame waits behind what is already buffered)
# before the connection is dropped without one.
CLOSE_TIMEOUT = 15.0


class _Close:
    """Queued after the last frame a watcher is sent: the writer then closes the socket."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


def text_frame_header(length: int) -> bytes:
    """RFC 6455 header of one unmasked, uncompressed, final text frame (server to client)."""
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class Watcher:
    """One WebSocket client: its outgoing queue, its writer task and the offers it follows."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, queue_size: int, queue_bytes: int
    ) -> None:
        self.ws = ws
        self._request = request
        self._queue: asyncio.Queue[bytes | _Close] = asyncio.Queue(maxsize=queue_size)
        # Bytes of the frames in the queue: a few large frames must not hold as much as many small.
        self._queued_bytes = 0
        self._max_bytes = queue_bytes
        self.seen = SeenVersions()
        self.user_id: uuid.UUID | None = None
        self.username = ""
        self.expires_at = 0
        self.following: set[str] = set()
        self.closing = False
        self._closer: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._writer = asyncio.create_task(self._write())

    def __repr__(self) -> str:
        return f"<Watcher {self.username or '(anonymous)'} {self._request.remote}>"

    def send(self, frame: bytes) -> bool:
        """Queue a frame without waiting; False if the watcher is closing or was just closed as too slow."""
        if self.closing:
            return False
        if self._queue.empty() and self._keeps_up():
            # Nothing queued to overtake and the peer has read everything so far: write now. Waking
            # the writer task instead cost a third of the gateway's CPU in a 5,000-socket broadcast
            # (`make bench`), and the bare aiohttp broadcast it is measured against does not do it.
            self._request.transport.write(text_frame_header(len(frame)) + frame)  # type: ignore[union-attr]  # _keeps_up() saw the transport open
            return True
        if self._queued_bytes + len(frame) > self._max_bytes:
            log.warning("closing %r: %d bytes behind", self, self._queued_bytes)
            self._evict()
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("closing %r: %d frames behind", self, self._queue.qsize())
            self._evict()
            return False
        self._queued_bytes += len(frame)
        return True

    def close_after_sent(self, code: int, reason: str) -> None:
        """Close once every frame queued so far is written (an error frame then the close frame)."""
        if self.closing:
            return
        try:
            self._queue.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            self._evict()
            return
        self.closing = True

    def expire_at(self, expires_at: int, on_expiry: Callable[[], None]) -> None:
        """(Re)arm the token-expiry timer; a refreshed token only ever moves it later."""
        if expires_at <= self.expires_at and self._expiry is not None:
            return
        self.expires_at = expires_at
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, expires_at - time.time()), on_expiry)

    def _evict(self) -> None:
        WS_SLOW_CLOSED.inc()
        self.closing = True
        # The writer is stuck on a full socket; the frame it was writing is already in the
        # transport's buffer whole (aiohttp writes a frame synchronously, then drains).
        self._writer.cancel()
        self._closer = asyncio.create_task(self._close(CLOSE_TOO_SLOW, "too slow: fell behind"))

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._close(item.code, item.reason)
                    return
                self._queued_bytes -= len(item)
                await self.ws.send_frame(item, WSMsgType.TEXT)
                # Not kept while the next frame is awaited: orjson's bytes each hold a 4 KiB buffer,
                # and every watcher's last frame (often its own `authenticated`) would stay alive
                # (20 MB at 5,000 sockets under `make bench`).
                del item
        except ConnectionError:  # the peer went away (aiohttp's reset error is a ConnectionError)
            self.closing = True
        except Exception:
            log.exception("writer of %r failed; dropping the connection", self)
            self.closing = True
            self._abort()

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            self._abort()

    def _keeps_up(self) -> bool:
        """The socket is open and its write buffer empty, so a write neither waits nor piles up."""
        transport = self._request.transport
        return (
            transport is not None
            and not transport.is_closing()
            and not self.ws.closed
            and transport.get_write_buffer_size() == 0
        )

    def _abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def finish(self) -> None:
        """After the socket's read loop ended: let a requested close complete, stop the writer."""
        # A close was requested if the watcher is closing while its writer still runs (a close
        # frame is queued) or if it was evicted (a closer task runs).
        closing_task = self._closer or (self._writer if self.closing and not self._writer.done() else None)
        self.closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        if closing_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(closing_task), CLOSE_TIMEOUT + 1)
            except asyncio.TimeoutError:
                self._abort()
        self._writer.cancel()
        if self.ws.close_code == WSCloseCode.ABNORMAL_CLOSURE:
            # A dead peer (no pong, reset): drop the connection instead of flushing to nobody.
            self._abort()
