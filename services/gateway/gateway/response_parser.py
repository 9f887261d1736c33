"""An incremental HTTP/1.x response parser for the gateway's upstream client: status, headers, body.

Fed the bytes of one connection as they arrive; says when the response is complete and whether the
connection may carry another request. Bodies come with Content-Length, chunked, or until the
connection closes; HEAD answers and 1xx/204/304 have none.
"""

from __future__ import annotations

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
NO_BODY_STATUSES = frozenset({204, 304})


class IncompleteResponse(ValueError):
    """The connection closed before the response was complete."""


class ResponseParser:
    def __init__(self, *, head: bool = False) -> None:
        self._head_request = head
        self._buffer = bytearray()
        self.started = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.body = b""
        # Body framing once the head is read: "length", "chunked" or "close" (until EOF).
        self._framing: str | None = None
        self._length = 0
        self._chunks: list[bytes] = []
        self._done = False

    def feed(self, data: bytes) -> bool:
        """Take more bytes; True once the response is complete. Raises ValueError on a bad response."""
        if self._done:
            raise ValueError("bytes after the end of the response")
        self.started = True
        self._buffer += data
        while self._framing is None:
            if not self._read_head():
                return False
        return self._read_body()

    def feed_eof(self) -> None:
        """The connection closed: a body read until close ends here; anything else is cut short."""
        if self._framing == "close":
            self.body = bytes(self._buffer)
            self._buffer.clear()
            self._done = True
            return
        if not self._done:
            raise IncompleteResponse("the connection closed before the response was complete")

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ValueError("response head too large")
            return False
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and code.isascii()):
            raise ValueError(f"bad status line {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ValueError(f"bad header line {line[:80]!r}")
            headers.setdefault(name.lower(), value.strip())
        if 100 <= status < 200:
            return True  # an interim answer: the real one follows
        self.status, self.headers = status, headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        if self._head_request or status in NO_BODY_STATUSES:
            self._framing, self._length = "length", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._framing = "chunked"
        elif "content-length" in headers:
            raw = headers["content-length"]
            if not (raw.isdigit() and raw.isascii()) or int(raw) > MAX_BODY_BYTES:
                raise ValueError(f"bad Content-Length {raw[:20]!r}")
            self._framing, self._length = "length", int(raw)
        else:
            self._framing, self.keep_alive = "close", False
        return True

    def _read_body(self) -> bool:
        if self._framing == "length":
            if len(self._buffer) < self._length:
                return False
            self.body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
            return self._complete()
        if self._framing == "chunked":
            return self._read_chunks()
        if len(self._buffer) > MAX_BODY_BYTES:
            raise ValueError("response body too large")
        return False  # until the connection closes

    def _read_chunks(self) -> bool:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ValueError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise ValueError("negative chunk size")
            if size == 0:
                # The last chunk, then optional trailer lines, then an empty line.
                if buffer[line_end + 2 : line_end + 4] == b"\r\n":
                    del buffer[: line_end + 4]
                else:
                    trailer_end = buffer.find(b"\r\n\r\n", line_end + 2)
                    if trailer_end < 0:
                        return False
                    del buffer[: trailer_end + 4]
                self.body = b"".join(self._chunks)
                self._chunks = []
                return self._complete()
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return False
            if buffer[start + size : start + size + 2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            self._chunks.append(bytes(buffer[start : start + size]))
            self._length += size
            if self._length > MAX_BODY_BYTES:
                raise ValueError("response body too large")
            del buffer[: start + size + 2]

    def _complete(self) -> bool:
        self._done = True
        if self._buffer:
            self.keep_alive = False  # more than one answer to one request: never reuse this stream
        return True
