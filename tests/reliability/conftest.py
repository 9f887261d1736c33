"""Fault-test fixtures: the stack's services reach RabbitMQ and PostgreSQL only through fault proxies.

One stack for the whole package (starting four processes costs seconds on this machine); each test ends
with both proxies restored and every service healthy again, and stops the workers it started.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import aiohttp
import pytest

from auction_shared.config import Settings
from tests.support.api import Api
from tests.support.cleanup import delete_broker_names
from tests.support.environment import env_of
from tests.support.faultproxy import FaultProxy
from tests.support.processes import ServiceProcess, Stack

# Short, so a request that needs a missing dependency gives up (503) quickly in these tests.
DEPENDENCY_TIMEOUT = "2"


def proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    return FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)


@pytest.fixture(scope="package")
def settings(settings: Settings) -> Iterator[Settings]:
    """The run's database, but exchanges and queues of the fault tests' own.

    These tests assert that bids wait in their shard queues while the only worker cannot apply them;
    a consumer that any earlier test left on the run's shard queues would take them instead.
    """
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}_faults")
    yield own
    asyncio.run(delete_broker_names(own))


@pytest.fixture(scope="package")
def broker_proxy(settings: Settings) -> Iterator[FaultProxy]:
    with proxy_for(settings.amqp_url) as proxy:
        yield proxy


@pytest.fixture(scope="package")
def database_proxy(settings: Settings) -> Iterator[FaultProxy]:
    with proxy_for(settings.database_url) as proxy:
        yield proxy


@pytest.fixture(scope="package")
def faulty_stack(
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    broker_proxy: FaultProxy,
    database_proxy: FaultProxy,
) -> Iterator[Stack]:
    """auth, offers, bids and gateway as processes whose RabbitMQ and Postgres go through the proxies."""
    env = env_of(
        settings,
        AMQP_URL=broker_proxy.url_for(settings.amqp_url),
        DATABASE_URL=database_proxy.url_for(settings.database_url),
        DEPENDENCY_TIMEOUT=DEPENDENCY_TIMEOUT,
    )
    stack = Stack(env, tmp_path_factory.mktemp("faulty-stack"))
    try:
        stack.start_services()
        yield stack
    finally:
        # Shutting down against a cut dependency would only wait out timeouts.
        broker_proxy.restore()
        database_proxy.restore()
        stack.stop()


def _all_healthy(stack: Stack, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = ["auth", "offers", "bids", "gateway"]
    while pending:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports[pending[0]]}/health", timeout=5):
                pending.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending[0]} did not recover within {timeout}s after the test")
        time.sleep(0.1)


@pytest.fixture
def workers(faulty_stack: Stack) -> Iterator[list[ServiceProcess]]:
    """Workers a test starts (`faulty_stack.start_worker`) are stopped when it ends."""
    before = len(faulty_stack.processes)
    started: list[ServiceProcess] = []
    yield started
    for proc in faulty_stack.processes[before:]:
        proc.kill()
        proc.terminate()
    del faulty_stack.processes[before:]


@pytest.fixture
async def client(
    faulty_stack: Stack, broker_proxy: FaultProxy, database_proxy: FaultProxy, workers: list[ServiceProcess]
) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, faulty_stack.gateway_url)
    broker_proxy.restore()
    database_proxy.restore()
    _all_healthy(faulty_stack)
