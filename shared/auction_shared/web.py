"""What every aiohttp service has in common: settings key, auth, paging, logging, start-up, GC settings."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .config import ConfigError, Settings
from .known_users import KnownUsers, known_user_middleware
from .observability import observe
from .observability.metrics import http_middlewares
from .observability.request_id import request_id_middleware
from .problems import Problem, problem_middleware
from .tokens import Identity, authenticate
from .validation import MAX_BODY_BYTES

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)

# aiohttp listens with a backlog of 128: a burst of connects beyond it (hey -c 1000 at the gateway,
# the gateway's pool opening connections to a service) waits for the kernel's SYN retry, 1 s and
# more, which showed up as 503s after the dependency timeout. The kernel caps it at somaxconn.
LISTEN_BACKLOG = 4096


def base_app(settings: Settings, *, has_database: bool = True, **kwargs: Any) -> web.Application:
    """`has_database=False` (the gateway): no known-user check, which needs the service's own pool
    (a process without one relays the request to a service that checks)."""
    known_users = (
        [known_user_middleware(settings.jwt_secret, KnownUsers(settings.known_user_ttl_seconds))]
        if has_database
        else []
    )
    app = web.Application(
        middlewares=[
            # Outermost: the request id and the metrics see the answer the client gets.
            request_id_middleware,
            *http_middlewares(settings.metrics_port, settings.log_level),
            problem_middleware,
            *known_users,
            *kwargs.pop("middlewares", []),
        ],
        client_max_size=MAX_BODY_BYTES,
        **kwargs,
    )
    app[SETTINGS] = settings
    return app


def identity(request: web.Request) -> Identity:
    """The caller's identity from its bearer token; services check it again behind the gateway."""
    return authenticate(request, request.app[SETTINGS].jwt_secret)


def page_params(request: web.Request, *, default_size: int = 10, max_size: int = 100) -> tuple[int, int]:
    """`page` (>= 0) and `size` (1..max_size) from the query string, or a 400 problem."""
    errors = []
    values = {}
    for name, default, low, high in (("page", 0, 0, 1_000_000), ("size", default_size, 1, max_size)):
        raw = request.query.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            errors.append({"field": name, "message": f"must be an integer from {low} to {high}"})
            continue
        values[name] = int(raw)
    if errors:
        raise Problem(400, "; ".join(f"{e['field']} {e['message']}" for e in errors), errors=errors)
    return values["page"], values["size"]


# Python's cyclic garbage collector looks at its youngest objects every 700 allocations by default:
# every few requests here, each time walking the objects of every request in flight and moving them
# to older generations that are walked again later. A service's own objects live for a request or
# for the whole run, so it runs every 20,000 instead, and what exists once the service has started
# is frozen out of every collection. The oldest generation is looked at with every middle one
# (every 200,000 allocations; the default is 70,000): a keep-alive connection that lived long is
# garbage there once it closes, and it waits for that collection. Looked at every 10 middle ones,
# the thousand connections of a `hey -c 1000` run were still held when the gateway's next burst of
# sockets came (its peak RSS in `make bench`: 205 MB against 196, and 194 without any of this).
# Measured in bench/findings.md, 2026-12-07.
GC_THRESHOLDS = (20_000, 10, 1)


def settle_garbage_collector() -> None:
    """Call once the service has started: fewer collections, and none that walks its startup objects."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


async def _settle_garbage_collector(_app: web.Application) -> None:
    settle_garbage_collector()


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency; Windows has none
        return
    uvloop.install()


def serve(
    name: str, factory: Callable[[Settings], web.Application], port_of: Callable[[Settings], int]
) -> None:
    """Entry point of `python -m <service>`: read settings, build the app, serve until SIGINT/SIGTERM."""
    try:
        settings = Settings.from_env()
        observe(name, settings)
        app = factory(settings)
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    install_uvloop()
    app.on_startup.append(_settle_garbage_collector)  # last: after every other startup step
    port = port_of(settings)
    web.run_app(
        app,
        host=settings.host,
        port=port,
        access_log=None,  # an access log line per request costs more than the request on this path
        print=lambda _: log.info("%s listening on http://%s:%d", name, settings.host, port),
        shutdown_timeout=10,
        backlog=LISTEN_BACKLOG,
    )
