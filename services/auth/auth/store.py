"""Every SQL statement of the auth service."""

from __future__ import annotations

import uuid

import asyncpg

# Usernames are unique regardless of case (migration 008's index on lower(username)): every lookup
# goes through lower() so it uses that index.


async def username_taken(conn: asyncpg.pool.Pool | asyncpg.Connection, username: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM users WHERE lower(username) = lower($1)", username))


async def insert_user(
    conn: asyncpg.pool.Pool | asyncpg.Connection, username: str, password_hash: str
) -> uuid.UUID | None:
    """Create the user; None if the username is taken in any case."""
    user_id: uuid.UUID | None = await conn.fetchval(
        "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING id",
        uuid.uuid4(),
        username,
        password_hash,
    )
    return user_id


async def find_user(conn: asyncpg.pool.Pool | asyncpg.Connection, username: str) -> asyncpg.Record | None:
    """The user whose name matches in any case, with the name as it was signed up."""
    return await conn.fetchrow(
        "SELECT id, username, password_hash FROM users WHERE lower(username) = lower($1)", username
    )
