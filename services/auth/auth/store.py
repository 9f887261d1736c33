"""Every SQL statement of the auth service."""

from __future__ import annotations

import uuid

import asyncpg


async def insert_user(
    conn: asyncpg.pool.Pool | asyncpg.Connection, username: str, password_hash: str
) -> uuid.UUID | None:
    """Create the user; None if the username is taken."""
    user_id: uuid.UUID | None = await conn.fetchval(
        "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (username) DO NOTHING RETURNING id",
        uuid.uuid4(),
        username,
        password_hash,
    )
    return user_id


async def find_user(conn: asyncpg.pool.Pool | asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, username, password_hash FROM users WHERE username = $1", username)
