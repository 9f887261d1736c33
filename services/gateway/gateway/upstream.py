"""A lean HTTP/1.1 client for the gateway's hops: pooled keep-alive connections, one write and one
timeout per request, the response parsed once.

aiohttp's ClientSession was about half of the gateway's CPU per forwarded bid (request and response
objects, tracing hooks, cookie jar, a timer per phase). The services behind the gateway are ours and
speak plain HTTP/1.1 on a trusted network, so a request here is one encoded buffer written to an idle
connection, and the response is read by a small parser into status, headers and body.

A connection is reused only after a complete response that allows it (HTTP/1.1 without
`Connection: close`, a known length, nothing left over); a timeout or any surprise closes it.
A request is retried on a fresh connection only if it is idempotent and a reused connection closed
before answering (the service closed it as idle just as the request went out): a POST is never sent
twice.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from .response_parser import IncompleteResponse, ResponseParser

# Idle connections older than this are closed rather than reused: well inside aiohttp's server-side
# keep-alive (75 s), so a service hardly ever closes one just as a request goes out on it.
IDLE_SECONDS = 30.0
MAX_IDLE = 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# What would end a request line or a header early, and so smuggle another one in.
UNSAFE_IN_VALUE = re.compile(r"[\r\n\0]")
UNSAFE_IN_TARGET = re.compile(r"[\r\n\0 ]")


class UpstreamError(ConnectionError):
    """The service could not be reached, closed the connection, or answered something unreadable."""


class ClosedBeforeAnswer(UpstreamError):
    """The connection closed before a single byte of the response arrived."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    # Lower-case names; the first value of a repeated header.
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a service; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: ResponseParser | None = None
        self._answer: asyncio.Future[UpstreamResponse] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def exchange(self, payload: bytes, *, head: bool, deadline: float) -> asyncio.Future[UpstreamResponse]:
        """Send the request; the future fails with TimeoutError (and the connection closes) if the
        whole answer is not in by `deadline` (loop time). A timer of its own rather than
        `asyncio.timeout`: that one cost as much as the rest of the exchange's Python."""
        assert self.transport is not None and self._answer is None
        loop = asyncio.get_running_loop()
        self._parser = ResponseParser(head=head)
        self._answer = loop.create_future()
        self._deadline = loop.call_at(deadline, self._fail, TimeoutError())
        self.transport.write(payload)
        return self._answer

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: the stream cannot be trusted any more
            return
        try:
            done = self._parser.feed(data)
        except ValueError as exc:
            self._fail(UpstreamError(f"unreadable response: {exc}"))
            return
        if done:
            self._finish()

    def eof_received(self) -> bool:
        if self._parser is not None and self._answer is not None and not self._answer.done():
            try:
                self._parser.feed_eof()
            except IncompleteResponse as exc:
                self._fail(self._lost(exc))
                return False
            self._finish()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            self._fail(self._lost(exc))

    def _lost(self, exc: BaseException | None) -> UpstreamError:
        if self._parser is not None and not self._parser.started:
            return ClosedBeforeAnswer(f"the service closed the connection before answering ({exc!r})")
        return UpstreamError(f"the service closed the connection mid-answer ({exc!r})")

    def _finish(self) -> None:
        parser, answer = self._parser, self._answer
        assert parser is not None and answer is not None
        self._parser = self._answer = None
        self._stop_timer()
        if not parser.keep_alive:
            self.close()
        answer.set_result(UpstreamResponse(parser.status, parser.headers, parser.body))

    def _fail(self, exc: UpstreamError | TimeoutError) -> None:
        answer = self._answer
        self._parser = self._answer = None
        self._stop_timer()
        self.close()
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def _stop_timer(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """The pooled connections to one service at `base_url` (http://host:port[/prefix])."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an upstream URL must be http://host[:port], got {base_url!r}")
        self.base_url = base_url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._host_header = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._idle: list[_Connection] = []

    async def request(
        self, method: str, path_qs: str, headers: dict[str, str], body: bytes | None = None
    ) -> UpstreamResponse:
        """Send one request and read its whole response within the timeout, or raise
        UpstreamError / TimeoutError."""
        payload = self._encode(method, path_qs, headers, body)
        deadline = asyncio.get_running_loop().time() + self._timeout  # one bound for all of it
        while True:
            connection, reused = await self._acquire(deadline)
            try:
                response = await connection.exchange(payload, head=method == "HEAD", deadline=deadline)
            except ClosedBeforeAnswer:
                if reused and method in IDEMPOTENT:
                    continue
                raise
            except BaseException:
                connection.close()  # timed out or cancelled: a late answer must not reach the next user
                raise
            self._release(connection)
            return response

    def _encode(self, method: str, path_qs: str, headers: dict[str, str], body: bytes | None) -> bytes:
        # Values come from parsed requests and checked tokens: this is the last line of defence.
        if UNSAFE_IN_TARGET.search(method + path_qs) or any(
            UNSAFE_IN_VALUE.search(value) for value in headers.values()
        ):
            raise ValueError("a line break or NUL in a forwarded request line or header")
        lines = [f"{method} {self._prefix}{path_qs} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in WITH_BODY:
            lines.append(f"Content-Length: {len(body or b'')}")
        head = "\r\n".join(lines)
        encoded = (head + "\r\n\r\n").encode("utf-8", "surrogateescape")
        return encoded + body if body else encoded

    async def _acquire(self, deadline: float) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection, True
            connection.close()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(deadline):  # a slow connect ends as a TimeoutError, as an answer
            try:
                _, connection = await loop.create_connection(_Connection, self._host, self._port)
            except OSError as exc:
                raise UpstreamError(f"cannot connect to {self.base_url}: {exc}") from exc
        return connection, False

    def _release(self, connection: _Connection) -> None:
        if connection.closed or len(self._idle) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
