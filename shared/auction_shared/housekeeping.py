"""Periodic clean-up a service runs beside its requests, as a cleanup context (any replica may run it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Job = Callable[[web.Application], Awaitable[object]]


def periodically(
    job: Job, every_seconds: float, what: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run `job(app)` once the app has started and then every `every_seconds`, until it stops.

    A failed round (the database is away) is logged and the next one tries again: the job is
    housekeeping, never what a request waits for.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                try:
                    await job(app)
                except Exception:
                    log.warning("could not %s; the next round tries again", what, exc_info=True)
                await asyncio.sleep(every_seconds)

        task = asyncio.create_task(loop(), name=what)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
