"""Fixtures of the live-update tests: one stack with a bid-worker, shared by this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auction_shared.config import Settings
from tests.support.environment import env_of
from tests.support.processes import Stack


@pytest.fixture(scope="package")
def live_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack and bid-worker for the live-update and browser tests, which only add their own users,
    offers and gateways to it (starting a stack costs seconds; these tests share one).

    Package-scoped: it stops when this folder's tests are done, so its processes and database
    connections do not stay up for the rest of the run."""
    s = Stack(env_of(settings), tmp_path_factory.mktemp("live"))
    try:
        s.start_services()
        s.start_worker("live-w1")
        yield s
    finally:
        s.stop()
