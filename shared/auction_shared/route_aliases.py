"""The public API answers every offer and bid route in the singular and the plural: one helper says so."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

# Collections whose routes also answer under their plural: /v1/offer/{id} and /v1/offers/{id}.
ALIASED = ("offer", "bid")


def spellings(path: str) -> tuple[str, ...]:
    """`path` and, when it starts with an aliased collection, the same path under its plural."""
    parts = path.split("/", 3)  # "", "v1", the collection, the rest
    if len(parts) < 3 or parts[:2] != ["", "v1"] or parts[2] not in ALIASED:
        return (path,)
    parts[2] += "s"
    return (path, "/".join(parts))


def add_aliased(add: Callable[[str, Handler], object], path: str, handler: Handler) -> None:
    """Register `handler` with `add` (`router.add_get`, `add_post`, …) under every spelling of `path`."""
    for spelling in spellings(path):
        add(spelling, handler)


# A service's route table: (HTTP method, path, handler), every path also under its plural.
Route = tuple[str, str, Handler]


def add_routes(app: web.Application, routes: list[Route]) -> None:
    """Register a service's route table, each aliased path under both spellings."""
    for method, path, handler in routes:
        for spelling in spellings(path):
            app.router.add_route(method, spelling, handler)
