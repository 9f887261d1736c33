"""The request id: accepted from the client (or made) at the gateway, carried over HTTP and AMQP.

It lives in a context variable, so every log line of the request's task, and every message it
publishes, carries it without being passed around.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar

from aiohttp import web

HEADER = "X-Request-Id"
# The AMQP header name; headers of a broker message are case-sensitive, so one spelling.
MESSAGE_HEADER = "x-request-id"
MAX_LENGTH = 200

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current() -> str | None:
    return REQUEST_ID.get()


def acceptable(value: object) -> bool:
    """A client's id is kept only if it cannot forge a log line: short printable ASCII."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_LENGTH
        and value.isascii()
        and value.isprintable()
        and '"' not in value
    )


def new() -> str:
    return os.urandom(16).hex()  # as unique as a uuid4, for less work on every request


def adopt(headers: Mapping[str, object] | None) -> str:
    """Set the id of the work at hand from a request's or a message's headers (or a new one)."""
    value = None
    if headers is not None:
        value = headers.get(HEADER) if HEADER in headers else headers.get(MESSAGE_HEADER)
    rid = value if acceptable(value) else new()
    assert isinstance(rid, str)
    REQUEST_ID.set(rid)
    return rid


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adopt the caller's X-Request-Id or make one, and answer with it (also on errors)."""
    token = REQUEST_ID.set(None)
    rid = adopt(request.headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[HEADER] = rid
        raise
    finally:
        REQUEST_ID.reset(token)
    if not response.prepared:  # a WebSocket has sent its headers already
        response.headers[HEADER] = rid
    return response
