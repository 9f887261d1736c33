"""The gateway's upstream client against real sockets: framing, keep-alive, failures, HEAD, big bodies.

Each test runs a tiny HTTP server written with asyncio streams, so the bytes on the wire are exactly
the case under test (chunks split anywhere, `Connection: close`, a server that stalls mid-answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.upstream import Upstream, UpstreamError

# Reads one request (head and Content-Length body) and writes whatever the test wants back.
Answer = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[str, Server]]:
    server_state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                server_state.requests.append((head, body))
                await answer(head, body, writer)
                if writer.is_closing():
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server_state
    finally:
        server.close()


async def write_in_pieces(writer: asyncio.StreamWriter, data: bytes, piece: int) -> None:
    for i in range(0, len(data), piece):
        writer.write(data[i : i + piece])
        await writer.drain()
        await asyncio.sleep(0.001)


async def test_a_chunked_answer_split_anywhere_is_read_whole_and_the_connection_reused() -> None:
    chunks = [b"hello ", b"x" * 3000, b"", b"world"]
    wire = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\nX-Trailer: t\r\n\r\n"

    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
        await write_in_pieces(writer, wire, 7)

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=5)
        for _ in range(3):
            resp = await upstream.request("GET", "/v1/offer", {"Accept": "*/*"})
            assert resp.status == 200 and resp.body == b"".join(chunks)
            assert resp.headers["content-type"] == "text/plain"
        assert server.connections == 1
        upstream.close()


async def test_connection_close_is_honoured_and_the_next_request_opens_a_new_connection() -> None:
    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=5)
        for _ in range(3):
            resp = await upstream.request("POST", "/v1/offer", {}, b"{}")
            assert (resp.status, resp.body) == (201, b"ok")
        assert server.connections == 3
        upstream.close()


async def test_an_answer_without_length_is_read_until_the_server_closes() -> None:
    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
        await write_in_pieces(writer, b"until-close" * 100, 100)
        writer.close()

    async with serving(answer) as (url, _):
        upstream = Upstream(url, timeout=5)
        assert (await upstream.request("GET", "/x", {})).body == b"until-close" * 100
        upstream.close()


async def test_a_head_answer_has_no_body_and_does_not_desync_the_connection() -> None:
    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        # A HEAD answer announces the GET's length but sends no body.
        if head.startswith(b"HEAD "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: application/json\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=5)
        head = await upstream.request("HEAD", "/v1/offer", {})
        assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "1234"
        get = await upstream.request("GET", "/v1/offer", {})
        assert get.body == b"body"
        assert server.connections == 1
        upstream.close()


async def test_bodies_near_the_64_kib_limit_go_and_come_back_whole() -> None:
    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        await write_in_pieces(writer, body, 1500)

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=10)
        for size in (64 * 1024 - 1, 64 * 1024):
            sent = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
            resp = await upstream.request("POST", "/v1/signup", {"Content-Type": "application/json"}, sent)
            assert resp.body == sent
            assert server.requests[-1][1] == sent
        upstream.close()


async def test_a_service_that_is_down_raises_upstream_error() -> None:
    async with serving(lambda *_: asyncio.sleep(0)) as (url, _):
        pass  # the port is closed again: nothing listens there now
    with pytest.raises(UpstreamError):
        await Upstream(url, timeout=5).request("GET", "/health", {})


async def test_a_service_that_stalls_mid_answer_times_out_and_its_connection_is_not_reused() -> None:
    stall = asyncio.Event()

    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        if not stall.is_set():
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly")  # 4 of 10 bytes
            await writer.drain()
            stall.set()
            # A late rest of the body must not be read as the next request's answer.
            await asyncio.sleep(0.5)
            writer.write(b"-late!")
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=0.2)
        with pytest.raises(TimeoutError):
            await upstream.request("GET", "/slow", {})
        await asyncio.sleep(0.5)
        resp = await upstream.request("GET", "/next", {})
        assert resp.body == b"fresh"
        assert server.connections == 2
        upstream.close()


async def test_a_reused_connection_closed_before_answering_is_retried_for_a_get_but_never_for_a_post() -> (
    None
):
    # The writers themselves, not their id(): a closed connection's writer may be freed and its id
    # given to the next connection's, which would then be dropped before it answered anything.
    answered: set[asyncio.StreamWriter] = set()

    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        # Each connection answers its first request, then drops the next one unanswered, as a
        # service closing an idle keep-alive connection just as a request arrives would.
        if writer in answered:
            writer.transport.abort()
            return
        answered.add(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with serving(answer) as (url, server):
        upstream = Upstream(url, timeout=5)
        assert (await upstream.request("GET", "/a", {})).body == b"ok"
        assert (await upstream.request("GET", "/b", {})).body == b"ok"  # dropped once, sent again
        with pytest.raises(UpstreamError):
            await upstream.request("POST", "/c", {}, b"{}")
        assert [h.split(b" ")[1] for h, _ in server.requests] == [b"/a", b"/b", b"/b", b"/c"]
        upstream.close()


async def test_a_line_break_in_a_forwarded_value_is_refused_before_anything_is_sent() -> None:
    async with serving(lambda *_: asyncio.sleep(0)) as (url, server):
        upstream = Upstream(url, timeout=5)
        with pytest.raises(ValueError):
            await upstream.request("GET", "/x", {"Authorization": "Bearer t\r\nX-Admin: 1"})
        with pytest.raises(ValueError):
            await upstream.request("GET", "/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /y", {})
        assert server.requests == []
        upstream.close()


async def test_an_unreadable_answer_is_an_upstream_error() -> None:
    async def answer(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SMTP ready\r\n\r\n")

    async with serving(answer) as (url, _):
        with pytest.raises(UpstreamError):
            await Upstream(url, timeout=5).request("GET", "/x", {})
