"""Sign-up is no bcrypt CPU sink: a taken name costs no hash, and hashing at once is bounded (503 with
Retry-After beyond it) so logins keep working under a flood of sign-ups."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import replace

import bcrypt
import pytest

from auction_shared.config import Settings

SLOTS = 2


async def test_a_taken_name_in_any_case_is_refused_before_any_bcrypt_hash(
    auth_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = 0
    real_hash = bcrypt.hashpw

    def counting_hash(password: bytes, salt: bytes) -> bytes:
        nonlocal hashed
        hashed += 1
        return real_hash(password, salt)

    monkeypatch.setattr(bcrypt, "hashpw", counting_hash)
    name = f"Taken_{uuid.uuid4().hex[:8]}"
    assert (await auth_client.post("/v1/signup", json={"username": name, "password": "first"})).status == 201
    assert hashed == 1
    for again in (name, name.lower(), name.upper()):
        resp = await auth_client.post("/v1/signup", json={"username": again, "password": "second"})
        assert resp.status == 409, again
    assert hashed == 1, "a taken name must not cost a bcrypt hash"


async def test_a_sign_up_flood_gets_503_with_retry_after_while_logins_keep_working(
    aiohttp_client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth.app import create_app

    # A real cost, so hashes overlap as they would in production.
    client = await aiohttp_client(create_app(replace(settings, bcrypt_rounds=12, signup_hash_slots=SLOTS)))
    member = {"username": f"member_{uuid.uuid4().hex[:8]}", "password": "member-pw"}
    assert (await client.post("/v1/signup", json=member)).status == 201

    running = peak = 0
    lock = threading.Lock()
    real_hash = bcrypt.hashpw

    def watched_hash(password: bytes, salt: bytes) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real_hash(password, salt)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "hashpw", watched_hash)
    names = [f"flood_{i}_{uuid.uuid4().hex[:6]}" for i in range(30)]
    flood = [client.post("/v1/signup", json={"username": n, "password": "flood-pw"}) for n in names]
    answers = await asyncio.gather(*flood, client.post("/v1/login", json=member))
    *signups, login = answers
    assert login.status == 200, "a login must get through a flood of sign-ups"
    statuses = [r.status for r in signups]
    assert set(statuses) <= {201, 503}
    assert statuses.count(503) > 0, "sign-ups beyond the hashing slots must be refused, not queued"
    assert peak <= SLOTS
    for resp in signups:
        if resp.status == 503:
            assert resp.content_type == "application/problem+json"
            assert int(resp.headers["Retry-After"]) >= 1
    # A refused sign-up left nothing behind: retried, it succeeds.
    refused = [n for n, s in zip(names, statuses, strict=True) if s == 503]
    retry = await client.post("/v1/signup", json={"username": refused[0], "password": "flood-pw"})
    assert retry.status == 201
