"""The bare programs each figure is compared with: the least code that does the same job."""

from __future__ import annotations

import os

from aiohttp import web

from auction_shared.web import LISTEN_BACKLOG


def serve(app: web.Application, name: str) -> None:
    """Run a bare baseline on BARE_PORT with uvloop, as the services run (no access log, their backlog,
    so connect bursts cost both sides the same); say `<name> listening` once it does."""
    import uvloop

    uvloop.install()
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ["BARE_PORT"]),
        access_log=None,
        backlog=LISTEN_BACKLOG,
        print=lambda _: print(f"{name} listening", flush=True),
    )
