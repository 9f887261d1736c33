"""Fault-test fixtures: the stack's services reach RabbitMQ and PostgreSQL only through fault proxies."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from auction_shared.config import Settings
from tests.reliability.client import Client
from tests.support.environment import env_of
from tests.support.faultproxy import FaultProxy
from tests.support.processes import Stack

# Short, so a request that needs a missing dependency gives up (503) quickly in these tests.
DEPENDENCY_TIMEOUT = "2"


def _proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    return FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[FaultProxy]:
    with _proxy_for(settings.amqp_url) as proxy:
        yield proxy


@pytest.fixture
def database_proxy(settings: Settings) -> Iterator[FaultProxy]:
    with _proxy_for(settings.database_url) as proxy:
        yield proxy


@pytest.fixture
def faulty_stack(
    settings: Settings, log_dir: Path, broker_proxy: FaultProxy, database_proxy: FaultProxy
) -> Iterator[Stack]:
    """auth, offers, bids and gateway as processes whose RabbitMQ and Postgres go through the proxies."""
    env = env_of(
        settings,
        AMQP_URL=broker_proxy.url_for(settings.amqp_url),
        DATABASE_URL=database_proxy.url_for(settings.database_url),
        DEPENDENCY_TIMEOUT=DEPENDENCY_TIMEOUT,
    )
    stack = Stack(env, log_dir)
    try:
        stack.start_services()
        yield stack
    finally:
        # Shutting down against a cut dependency would only wait out timeouts.
        broker_proxy.restore()
        database_proxy.restore()
        stack.stop()


@pytest.fixture
async def client(faulty_stack: Stack) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, faulty_stack.gateway_url)
