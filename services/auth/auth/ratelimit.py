"""Login throttling per username and per client address, counted in PostgreSQL for every replica."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# One statement counts the attempt for every key and tells how far each window is: the row lock of
# the upsert serialises concurrent attempts on a key, so of fifty at once exactly `limit` get through,
# on any replica. A count stops at limit + 1, so attempts refused meanwhile do not pile up, and a
# window that ended starts again at 1: a lockout always ends with its window.
_COUNT = """
INSERT INTO login_attempts AS a (key, window_started, attempts)
SELECT k, $2, 1 FROM unnest($1::text[]) AS k
ON CONFLICT (key) DO UPDATE SET
    window_started = CASE WHEN a.window_started <= $2 - $3::interval THEN $2 ELSE a.window_started END,
    attempts = CASE WHEN a.window_started <= $2 - $3::interval THEN 1 ELSE least(a.attempts + 1, $4) END
RETURNING attempts, window_started
"""


class LoginThrottle:
    """Allows `limit` attempts per key within a fixed window of `window_seconds`."""

    def __init__(self, limit: int, window_seconds: float, clock: Clock = utc_now) -> None:
        self._limit = limit
        self._window = timedelta(seconds=window_seconds)
        self._clock = clock

    async def attempt(self, conn: asyncpg.Pool | asyncpg.Connection, keys: Sequence[str]) -> int:
        """Count one attempt against every key; 0 if it may go on, else seconds until it may retry.

        Called before the password is checked, so concurrent guesses cannot all pass the check
        before the first failure is counted."""
        now = self._clock()
        # Sorted, so two attempts lock their rows in the same order and never deadlock.
        rows = await conn.fetch(_COUNT, sorted(set(keys)), now, self._window, self._limit + 1)
        over: list[timedelta] = [
            r["window_started"] + self._window - now for r in rows if r["attempts"] > self._limit
        ]
        if not over:
            return 0
        return max(1, math.ceil(max(over).total_seconds()))

    async def succeeded(
        self, conn: asyncpg.Pool | asyncpg.Connection, user_key: str, address_key: str
    ) -> None:
        """A right password: the username starts afresh, and the address gets its attempt back."""
        await conn.execute(
            "WITH gone AS (DELETE FROM login_attempts WHERE key = $1)"
            " UPDATE login_attempts SET attempts = attempts - 1 WHERE key = $2 AND attempts > 0",
            user_key,
            address_key,
        )

    async def forget_ended(self, conn: asyncpg.Pool | asyncpg.Connection) -> None:
        """Delete the rows of windows that ended (they would start afresh anyway)."""
        await conn.execute(
            "DELETE FROM login_attempts WHERE window_started <= $1", self._clock() - self._window
        )
