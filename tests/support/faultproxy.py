"""A TCP proxy that tests put between services and RabbitMQ or PostgreSQL to cut, stall and restore them.

It runs its own event loop in a background thread, so it serves subprocess services as well as apps
inside the test's loop, and its methods are plain blocking calls usable from sync or async tests.
The machine's real servers stay up for everyone else: only the connections through the proxy suffer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tests.support.processes import free_port

T = TypeVar("T")

CHUNK = 64 * 1024


class FaultProxy:
    """Forwards 127.0.0.1:<port> to a target; cut(), stall() and restore() inject the faults.

    - cut(): every open connection is closed at once and new ones are refused (the port is closed),
      as when the server's host vanishes.
    - stall(): connections are accepted but no byte moves in either direction, as a hung server or a
      black-holed network; the peers only notice through their own timeouts.
    - restore(): listening and forwarding again; connections cut before stay dead (clients reconnect).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = free_port()
        self.connections_made = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"faultproxy:{self.port}", daemon=True
        )
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None

    # ---- public, blocking API (call from any thread except the proxy's own) ----

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self) -> None:
        self._call(self._cut())

    def stall(self) -> None:
        self._call(self._stall())

    def restore(self) -> None:
        self._call(self._restore())

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def url_for(self, url: str) -> str:
        """`url` (amqp:// or postgresql://) with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- inside the proxy's loop ----

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            self._abort(writer)
        self._writers.clear()

    async def _stall(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()
        await self._listen()

    async def _restore(self) -> None:
        assert self._flowing is not None
        await self._listen()
        self._flowing.set()

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        # abort() sends no FIN handshake and drops buffered data: the peer sees a reset.
        transport = writer.transport
        if not transport.is_closing():
            transport.abort()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._abort(client_writer)
            return
        pair = (client_writer, server_writer)
        self._writers.update(pair)
        try:
            await asyncio.gather(
                self._pump(client_reader, server_writer), self._pump(server_reader, client_writer)
            )
        finally:
            for writer in pair:
                self._abort(writer)
                self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                # Stalled: read nothing, so TCP back-pressure holds the sender too.
                await self._flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side closed: close the other too so neither peer waits on a half-open pipe.
            self._abort(writer)
