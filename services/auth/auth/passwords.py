"""bcrypt hashing and checking, in worker threads so the event loop keeps serving.

Sign-ups and logins have separate threads: a flood of sign-ups can take at most `hash_slots`
threads (more at once are refused with `Busy`, never queued), and logins keep their own.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt


class Busy(Exception):
    """Every hashing slot is taken: the caller should answer 503 and let the client retry."""


class PasswordHasher:
    def __init__(self, rounds: int, hash_slots: int) -> None:
        self._rounds = rounds
        # Checked against when the username is unknown, so both failures take the same time.
        self._decoy = bcrypt.hashpw(b"decoy password", bcrypt.gensalt(rounds))
        self._hash_slots = hash_slots
        self._hashing = 0
        self._hashers = ThreadPoolExecutor(hash_slots, thread_name_prefix="bcrypt-hash")
        self._checkers = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="bcrypt-check")

    async def hash(self, password: str) -> str:
        """The bcrypt hash of `password`; raises Busy at once if `hash_slots` hashes are running."""
        # Taken before the first await, so concurrent sign-ups cannot all see a free slot.
        if self._hashing >= self._hash_slots:
            raise Busy
        self._hashing += 1
        try:
            salt = bcrypt.gensalt(self._rounds)
            hashed = await asyncio.get_running_loop().run_in_executor(
                self._hashers, bcrypt.hashpw, password.encode(), salt
            )
        finally:
            self._hashing -= 1
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        target = hashed.encode() if hashed is not None else self._decoy
        ok = await asyncio.get_running_loop().run_in_executor(
            self._checkers, bcrypt.checkpw, password.encode(), target
        )
        return ok and hashed is not None

    def close(self) -> None:
        self._hashers.shutdown(wait=False, cancel_futures=True)
        self._checkers.shutdown(wait=False, cancel_futures=True)
