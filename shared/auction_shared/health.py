"""GET /health: the one builder of every service's probe, and the checks of the shared dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from .broker import CONNECTION
from .db import DB_POOL
from .jsonio import json_response
from .outages import broker_is_up, database_is_up
from .web import SETTINGS

# One dependency's check: True when it answers.
HealthCheck = Callable[[web.Application], Awaitable[bool]]
# Figures a /health body reports beside its dependencies (they never make it fail).
HealthFigures = Callable[[web.Application], Awaitable[dict[str, object]]]


async def database_answers(app: web.Application) -> bool:
    """The app's pool (`DB_POOL`) answers within `DEPENDENCY_TIMEOUT`."""
    return await database_is_up(app[DB_POOL], app[SETTINGS].dependency_timeout)


async def broker_connected(app: web.Application) -> bool:
    """The app's robust connection (`CONNECTION`) is connected now."""
    return broker_is_up(app[CONNECTION])


def health_handler(
    checks: dict[str, HealthCheck], figures: HealthFigures | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /health: 200 when every dependency answers, else 503 naming the ones that are down."""

    async def handler(request: web.Request) -> web.Response:
        names = list(checks)
        results = await asyncio.gather(*(checks[n](request.app) for n in names))
        deps = {n: ("up" if ok else "down") for n, ok in zip(names, results)}
        healthy = all(results)
        body: dict[str, object] = {"status": "ok" if healthy else "unavailable", "dependencies": deps}
        if figures is not None:
            body.update(await figures(request.app))
        return json_response(body, status=200 if healthy else 503)

    return handler
