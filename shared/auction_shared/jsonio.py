"""JSON encoding for every response and message: orjson, money as exact-to-the-cent numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Money has at most two decimals and is below 10^12, so a float prints it exactly.
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(value), status=status, headers=headers, content_type="application/json")
