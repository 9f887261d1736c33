"""Waiting and trying again: the one doubling backoff that every reconnect and retry loop uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """A pause that doubles after each failure, up to `ceiling`, and starts over after a success."""

    def __init__(self, first: float, ceiling: float) -> None:
        self.first = first
        self.ceiling = ceiling
        self.delay = first  # what the next `wait` sleeps

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Pause for `delay` and double it; True if `stop` was set meanwhile (the pause ends then)."""
        delay, self.delay = self.delay, min(self.delay * 2, self.ceiling)
        if stop is None:
            await asyncio.sleep(delay)
            return False
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            return False
        return True

    def reset(self) -> None:
        self.delay = self.first

    def __repr__(self) -> str:
        return f"Backoff(next={self.delay:.1f}s, first={self.first}, ceiling={self.ceiling})"


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    on: tuple[type[BaseException], ...],
    backoff: Backoff,
    attempts: int | None = None,
    give_up: Callable[[], bool] = lambda: False,
    waiting: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Await `attempt()` until it returns; after a failure listed in `on`, wait and try again.

    The failure is raised instead once `attempts` calls have failed (None: never) or `give_up()`
    says so. `waiting(exc, seconds)` is told before each pause, for a log line.
    """
    failed = 0
    while True:
        try:
            return await attempt()
        except on as exc:
            failed += 1
            if (attempts is not None and failed >= attempts) or give_up():
                raise
            if waiting is not None:
                waiting(exc, backoff.delay)
            await backoff.wait()
