"""Fixtures every test shares: a throwaway database and broker namespace per run, real apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from auction_shared.config import Settings
from tests.support.api import Account
from tests.support.environment import env_of, new_settings, prepare_sync, tear_down_sync
from tests.support.inprocess import World, account, running_world
from tests.support.pipeline import BidTap
from tests.support.processes import Stack


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """One database and one exchange/queue prefix for the whole run, removed afterwards."""
    s = new_settings()
    prepare_sync(s)
    yield s
    tear_down_sync(s)


@pytest.fixture
async def auth_client(aiohttp_client, settings: Settings) -> TestClient:
    from auth.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def offers_client(aiohttp_client, settings: Settings) -> TestClient:
    from offers.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def bids_client(aiohttp_client, settings: Settings) -> TestClient:
    from bids.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def fresh_login_attempts(settings: Settings) -> None:
    """Forget the login attempts earlier tests counted (every auth app of the run shares them in the
    database): for tests of a small limit, whose own attempts must be the only ones."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("DELETE FROM login_attempts")
    finally:
        await conn.close()


@pytest.fixture
def make_user(auth_client: TestClient):
    """Sign up and log in a fresh user through the real auth app."""

    async def make(prefix: str = "user") -> Account:
        return await account(auth_client, prefix)

    return make


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    """auth, offers, bids and a gateway on test servers, one set per module: the module's tests must
    share its loop (`pytestmark = pytest.mark.asyncio(loop_scope="module")`)."""
    async with running_world(settings) as w:
        yield w


@pytest_asyncio.fixture(loop_scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the run's database, to put rows in states no route reaches in a moment;
    for tests on their module's loop (those that use `world`)."""
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


@pytest_asyncio.fixture(loop_scope="module")
async def bid_tap(settings: Settings) -> AsyncIterator[BidTap]:
    """What intake really queued during the test: a queue of its own bound to `bid.placed`; for tests
    on their module's loop (those that use `world`)."""
    async with BidTap(settings) as tap:
        yield tap


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def stack(settings: Settings, log_dir: Path) -> Iterator[Stack]:
    """auth, offers, bids and gateway as real processes; tests add workers and gateways."""
    s = Stack(env_of(settings), log_dir)
    try:
        s.start_services()
        yield s
    finally:
        s.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make check` runs the tests marked `unit`: those that need no PostgreSQL, RabbitMQ or stack.

    A test needs the servers exactly when it uses the run's `settings` (every database, broker and
    process fixture builds on it) or is marked `servers` (it starts them another way)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "settings" not in fixtures and item.get_closest_marker("servers") is None:
            item.add_marker(pytest.mark.unit)
