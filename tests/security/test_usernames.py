"""Usernames that differ only in case are one name: sign-up refuses the second, login takes any case,
and what others see (`created_by`, the token) is the spelling it was signed up with. Migration 008
refuses to run on a database that already has such a pair, and names them."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import asyncpg
import jwt
import pytest

from auction_shared.config import Settings
from auction_shared.migrate import MigrationFailed, create_database, migrate, migration_files
from tests.support.cleanup import drop_database
from tests.support.inprocess import running_world


async def test_alice_blocks_alice_and_logs_in_in_any_case_as_herself(settings: Settings) -> None:
    async with running_world(settings) as world:
        name = f"Alice_{uuid.uuid4().hex[:8]}"
        resp = await world.gateway.post("/v1/signup", json={"username": name, "password": "alice-pw"})
        assert resp.status == 201
        user_id = (await resp.json())["id"]
        impostor = await world.gateway.post(
            "/v1/signup", json={"username": name.lower(), "password": "x-pw1"}
        )
        assert impostor.status == 409

        for spelling in (name, name.lower(), name.upper()):
            resp = await world.gateway.post("/v1/login", json={"username": spelling, "password": "alice-pw"})
            assert resp.status == 200, spelling
            token = (await resp.json())["token"]
            claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
            assert (claims["sub"], claims["username"]) == (user_id, name)

        resp = await world.gateway.post(
            "/v1/offer",
            json={"title": "lamp", "bid_price": 5},
            headers={"Authorization": f"Bearer {token}"},  # logged in as NAME.upper()
        )
        assert resp.status == 201
        assert (await resp.json())["created_by"] == name


@pytest.fixture
async def old_database(settings: Settings, tmp_path: Path):
    """A database migrated up to 007 (before usernames were one in any case), dropped afterwards."""
    url = replace(settings, database_url=settings.database_url + "_old").database_url
    old = tmp_path / "migrations"
    old.mkdir()
    for number, path in migration_files():
        if number < 8:
            shutil.copy(path, old)
    await create_database(url)
    await migrate(url, old)
    try:
        yield url
    finally:
        await drop_database(url)


async def test_migration_008_names_existing_case_clashes_and_changes_nothing_until_they_are_renamed(
    old_database: str,
) -> None:
    conn = await asyncpg.connect(old_database)
    try:
        ids = {name: uuid.uuid4() for name in ("Alice", "alice", "ALICE", "Bob", "bob", "carol")}
        for name, user_id in ids.items():
            await conn.execute(
                "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, 'x')", user_id, name
            )
        with pytest.raises(MigrationFailed) as failed:
            await migrate(old_database)
        message = str(failed.value)
        assert "008_usernames_any_case.sql" in message
        assert "ALICE, Alice, alice" in message and "Bob, bob" in message and "carol" not in message
        assert str(ids["Alice"]) in message and "rename" in message
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 7

        for name, renamed in (("alice", "alice_2"), ("ALICE", "alice_3"), ("bob", "bob_2")):
            await conn.execute("UPDATE users SET username = $1 WHERE id = $2", renamed, ids[name])
        assert 8 in await migrate(old_database)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO users (id, username, password_hash) VALUES ($1, 'CAROL', 'x')", uuid.uuid4()
            )
    finally:
        await conn.close()


def test_no_two_migrations_share_a_number() -> None:
    # Two files with one number: the second would be recorded as applied without ever running.
    numbers = [number for number, _ in migration_files()]
    assert len(numbers) == len(set(numbers)), sorted(numbers)
