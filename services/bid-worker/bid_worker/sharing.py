"""Sharing the shard queues out between live bid-workers (pure: no I/O here).

Every worker consumes every shard; the broker lets one consumer per shard be active, normally the
one that subscribed first. Left alone, the first worker to start would hold every shard and the
others would only stand by. So workers announce themselves, agree on an owner for each shard by
rendezvous hashing over the live ones, and a worker active on a shard it does not own hands it on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable


class Roster:
    """The workers heard from within `ttl` seconds, this one always included."""

    def __init__(self, me: str, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.me = me
        self._ttl = ttl
        self._clock = clock
        self._heard: dict[str, float] = {}

    def heard(self, worker: str) -> None:
        self._heard[worker] = self._clock()

    def members(self) -> list[str]:
        cutoff = self._clock() - self._ttl
        self._heard = {w: t for w, t in self._heard.items() if t >= cutoff}
        return sorted({self.me, *self._heard})


def owner(shard: int, members: list[str]) -> str:
    """The member that should hold `shard`: stable, and moving few shards when members change."""
    return max(members, key=lambda m: hashlib.blake2b(f"{m}/{shard}".encode(), digest_size=8).digest())
