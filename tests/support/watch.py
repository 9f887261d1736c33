"""A test client of `GET /v1/stream`: send events, read frames until one matches, read the close code.

Every wait has a generous deadline and polls for a condition; none asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

DEADLINE = 20.0

Frame = dict[str, Any]


class StreamClosed(AssertionError):
    """The socket closed while a test still waited for a frame."""


class Watch:
    """One WebSocket on a gateway; every frame it read is kept in `frames`, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.token = ""

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, base_url: str, token: str | None = None, **kwargs: Any
    ) -> Watch:
        """Connect; with a token, also authenticate and wait for `authenticated`."""
        ws = await session.ws_connect(base_url.rstrip("/") + "/v1/stream", **kwargs)
        watch = cls(ws)
        if token is not None:
            await watch.authenticate(token)
        return watch

    async def authenticate(self, token: str) -> Frame:
        self.token = token
        await self.send("authenticate")
        return await self.until(lambda f: f["event"] in ("authenticated", "error"))

    async def send(self, event: str, token: str | None = None, **fields: Any) -> None:
        await self.ws.send_str(
            orjson.dumps({"event": event, "token": token or self.token, **fields}).decode()
        )

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def next(self, deadline: float = DEADLINE) -> Frame:
        msg = await self.ws.receive(timeout=deadline)
        if msg.type is aiohttp.WSMsgType.TEXT:
            frame = orjson.loads(msg.data)
            self.frames.append(frame)
            return frame
        raise StreamClosed(f"expected a frame, got {msg.type.name} (close code {self.ws.close_code})")

    async def until(self, match: Callable[[Frame], bool], deadline: float = DEADLINE) -> Frame:
        """Read frames until one matches (the others are kept in `frames` too)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while True:
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching frame in {deadline}s; read {self.frames[-5:]}")
            frame = await self.next(left)
            if match(frame):
                return frame

    async def request(self, event: str, reply: str, **fields: Any) -> Frame:
        """Send an event and return its reply (or the error it got)."""
        await self.send(event, **fields)
        return await self.until(lambda f: f["event"] in (reply, "error"))

    async def close_code(self, deadline: float = DEADLINE) -> int | None:
        """Read (keeping frames) until the server closes; return its close code."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while True:
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError(f"the socket was not closed in {deadline}s")
            msg = await self.ws.receive(timeout=left)
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(orjson.loads(msg.data))
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.ws.close_code
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return self.ws.close_code

    def of(self, event: str) -> list[Frame]:
        return [f for f in self.frames if f["event"] == event]

    async def close(self) -> None:
        await self.ws.close()
