"""Concurrent lookups of one key share one call: what a cache does when an entry expires under load.

Without it every request in flight for that key queries PostgreSQL at once when the entry expires
(a stampede each TTL under `make bench`: 1,000 concurrent bids of one bidder queued 1,000 queries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCalls(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """The result of `call()` for `key`, or of the one already running for it; and whether this
        caller started it. Shielded: one caller giving up (its client went away) does not cancel the
        others' call."""
        running = self._running.get(key)
        started = running is None
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(running), started

    def _forget(self, key: K, done: asyncio.Future[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody waited for is not logged as lost
