"""The one place that decides a dependency is down: which failures mean it, and whether it answers now.

A request that meets one of these answers 503 (the client may retry); a background loop that meets
one waits and tries again (see `retry.py`). Anything else is a bug in our code and is not retried.
"""

from __future__ import annotations

import asyncio

import aiohttp
import aiormq
import asyncpg
from aio_pika.abc import AbstractRobustConnection

# Where the wait itself failed: the socket broke or the bound on the wait ran out. True of every
# dependency, so each group below includes these two.
_NETWORK = (OSError, asyncio.TimeoutError)

# PostgreSQL has no usable connection for a request: refused, lost, shutting down, or full.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    *_NETWORK,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
)
# What a loop that must not drop its work retries on: the above and any statement PostgreSQL refused
# (a deadlock, a serialisation failure, a table being migrated). Retrying never loses a bid or an
# event; giving up would.
DATABASE_REFUSED: tuple[type[BaseException], ...] = (
    *_NETWORK,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
# Not an outage: the statement's own values are at fault, and PostgreSQL will refuse them on every
# try (SQLSTATE class 22, a data exception such as a numeric overflow; class 23, a check, foreign key
# or not-null constraint). A loop that retries DATABASE_REFUSED sets these apart instead.
DATABASE_REFUSES_THE_VALUES: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)
# RabbitMQ's connection or the channel a request used is gone.
BROKER_DOWN: tuple[type[BaseException], ...] = (
    *_NETWORK,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
)
# Connecting (or declaring right after connecting) failed: wait for RabbitMQ and try again.
BROKER_UNREACHABLE: tuple[type[BaseException], ...] = (*_NETWORK, aiormq.exceptions.AMQPError)
# A publish, an ack or a declare on an open channel failed: the channel or its connection is gone
# (aio-pika raises RuntimeError for a channel closed under it) or the confirm never came.
BROKER_CHANNEL_LOST: tuple[type[BaseException], ...] = (*_NETWORK, aiormq.exceptions.AMQPError, RuntimeError)
# RabbitMQ's management API could not be reached, or refused a request (`broker_users.ManagementApi`
# raises RuntimeError with the answer).
BROKER_ADMIN_FAILED: tuple[type[BaseException], ...] = (*_NETWORK, aiohttp.ClientError, RuntimeError)
# Another service of ours (behind the gateway) did not answer: the gateway's upstream client raises
# `UpstreamError`, a ConnectionError, or its bound ran out.
UPSTREAM_DOWN: tuple[type[BaseException], ...] = _NETWORK


def broker_is_up(connection: AbstractRobustConnection) -> bool:
    """Connected now (a robust connection that is reconnecting is not)."""
    return not connection.is_closed and connection.connected.is_set()


async def database_is_up(pool: asyncpg.Pool, timeout: float) -> bool:
    """A connection from the pool answers `SELECT 1` within `timeout`."""
    try:
        async with pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)
        return True
    except Exception:  # whatever the failure, a health check only reports "down"
        return False
