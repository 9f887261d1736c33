"""GET /openapi.json: the OpenAPI 3.1 description of the public API (openapi.json beside this file).

The file is written by hand; tests/security/test_openapi.py keeps it in step with the route table and
runs schemathesis against a live gateway with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

SPEC_PATH = Path(__file__).with_name("openapi.json")


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = orjson.loads(SPEC_PATH.read_bytes())
    return spec


# Parsed once at import, so a broken file stops the gateway at start-up, not at the first request.
_SPEC_BYTES = orjson.dumps(load_spec())


async def openapi_spec(request: web.Request) -> web.Response:
    return web.Response(body=_SPEC_BYTES, content_type="application/json")
