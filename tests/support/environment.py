"""A throwaway world for one test run: its own database, broker names and secret."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from dataclasses import replace

from auction_shared.config import Settings
from auction_shared.migrate import create_database, migrate

from .cleanup import delete_broker_names, drop_database

PG_BASE = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def new_settings() -> Settings:
    run = uuid.uuid4().hex[:10]
    return replace(
        Settings(),
        database_url=f"{PG_BASE}/auction_test_{run}",
        amqp_url=AMQP_URL,
        amqp_prefix=f"test_{run}",
        jwt_secret=secrets.token_hex(32),
        bcrypt_rounds=4,
        bid_shards=4,
        dependency_timeout=5.0,
        login_attempts_per_minute=1000,
        # Tests and benchmarks sign many accounts up at once; the slot limit has its own test.
        signup_hash_slots=64,
    )


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a service process needs to join this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        AMQP_URL=settings.amqp_url,
        AMQP_PREFIX=settings.amqp_prefix,
        JWT_SECRET=settings.jwt_secret,
        BCRYPT_ROUNDS=str(settings.bcrypt_rounds),
        BID_SHARDS=str(settings.bid_shards),
        LOGIN_ATTEMPTS_PER_MINUTE=str(settings.login_attempts_per_minute),
        SIGNUP_HASH_SLOTS=str(settings.signup_hash_slots),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


async def prepare(settings: Settings) -> None:
    await create_database(settings.database_url)
    await migrate(settings.database_url)


async def tear_down(settings: Settings) -> None:
    await drop_database(settings.database_url)
    await delete_broker_names(settings)


def prepare_sync(settings: Settings) -> None:
    asyncio.run(prepare(settings))


def tear_down_sync(settings: Settings) -> None:
    asyncio.run(tear_down(settings))
