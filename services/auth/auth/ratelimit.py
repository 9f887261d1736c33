"""Failed-login throttling per username and per client address (sliding window, in memory)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    """Allows `limit` failures per key within `window_seconds`; each replica counts its own."""

    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key may try again; 0 if none is blocked."""
        wait = 0.0
        for key in keys:
            stamps = self._recent(key)
            if len(stamps) >= self._limit:
                wait = max(wait, stamps[0] + self._window - self._clock())
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username_key: str) -> None:
        self._failures.pop(username_key, None)
