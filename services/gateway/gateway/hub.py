"""The hub: every authenticated WebSocket watcher of this replica and the offers each one follows.

A watcher's frames go through its own bounded queue to its own writer task, so a slow socket only
ever fills its own queue. When that queue is full the watcher is closed with 1008 instead of being
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
from collections.abc import Callable, Iterable

from aiohttp import WSCloseCode, WSMsgType, web

from auction_shared.observability.metrics import WS_FRAMES, WS_SLOW_CLOSED, WS_SOCKETS

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = WSCloseCode.POLICY_VIOLATION  # 1008: the peer reads slower than events arrive
# How long a closing handshake may take (the close frame waits behind what is already buffered)
# before the connection is dropped without one.
CLOSE_TIMEOUT = 15.0
# One watcher may follow this many offers at once; the hub's memory per watcher stays bounded.
MAX_FOLLOWED = 1000


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

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, queue_size: int) -> None:
        self.ws = ws
        self._request = request
        self._queue: asyncio.Queue[bytes | _Close] = asyncio.Queue(maxsize=queue_size)
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
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("closing %r: %d frames behind", self, self._queue.qsize())
            self._evict()
            return False
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


class Hub:
    """Connected and authenticated watchers and, per offer id, the watchers following it."""

    def __init__(self) -> None:
        self._connected: set[Watcher] = set()
        self._watchers: set[Watcher] = set()  # authenticated: they receive offerCreated
        self._followers: dict[str, set[Watcher]] = {}

    def __len__(self) -> int:
        return len(self._watchers)

    def connect(self, watcher: Watcher) -> None:
        self._connected.add(watcher)
        WS_SOCKETS.set(len(self._connected))

    def disconnect(self, watcher: Watcher) -> None:
        self.leave(watcher)
        self._connected.discard(watcher)
        WS_SOCKETS.set(len(self._connected))

    def join(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)

    def leave(self, watcher: Watcher) -> None:
        """The watcher receives nothing more from the hub (it may still be connected)."""
        self._watchers.discard(watcher)
        for offer_id in watcher.following:
            followers = self._followers.get(offer_id)
            if followers is not None:
                followers.discard(watcher)
                if not followers:
                    del self._followers[offer_id]
        watcher.following.clear()

    def follow(self, watcher: Watcher, offer_id: str) -> bool:
        """False if the watcher already follows as many offers as it may."""
        if offer_id not in watcher.following and len(watcher.following) >= MAX_FOLLOWED:
            return False
        watcher.following.add(offer_id)
        self._followers.setdefault(offer_id, set()).add(watcher)
        return True

    def unfollow(self, watcher: Watcher, offer_id: str) -> bool:
        """False if the watcher did not follow the offer."""
        if offer_id not in watcher.following:
            return False
        watcher.following.discard(offer_id)
        followers = self._followers.get(offer_id)
        if followers is not None:
            followers.discard(watcher)
            if not followers:
                del self._followers[offer_id]
        return True

    def is_followed(self, offer_id: str) -> bool:
        return offer_id in self._followers

    def broadcast(self, frame: bytes) -> int:
        """Queue `frame` to every authenticated watcher; return how many took it."""
        return self._deliver(self._watchers, frame)

    def to_followers(self, offer_id: str, frame: bytes) -> int:
        """Queue `frame` to the watchers following `offer_id`; return how many took it."""
        followers = self._followers.get(offer_id)
        return self._deliver(followers, frame) if followers else 0

    def _deliver(self, watchers: Iterable[Watcher], frame: bytes) -> int:
        # send() never awaits and never changes these sets; laggards leave after the loop.
        delivered = 0
        laggards = []
        for watcher in watchers:
            if watcher.send(frame):
                delivered += 1
            else:
                laggards.append(watcher)
        for watcher in laggards:
            self.leave(watcher)
        WS_FRAMES.inc(delivered)
        return delivered

    def close_all(self, code: int, reason: str) -> None:
        """Server shutdown: every connected watcher gets a close frame after what it was sent."""
        for watcher in list(self._connected):
            watcher.close_after_sent(code, reason)


HUB = web.AppKey("hub", Hub)
