"""bcrypt hashing, always in a worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

import bcrypt


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        # Checked against when the username is unknown, so both failures take the same time.
        self._decoy = bcrypt.hashpw(b"decoy password", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        raw = password.encode()
        hashed = await asyncio.to_thread(bcrypt.hashpw, raw, bcrypt.gensalt(self._rounds))
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        target = hashed.encode() if hashed is not None else self._decoy
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), target)
        return ok and hashed is not None
