"""Fixtures of the operations tests: a stack whose processes serve metrics, on broker names of its own."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aio_pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auction_shared.broker import Topology
from auction_shared.config import Settings
from tests.support.cleanup import delete_topology

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def own_settings(settings: Settings) -> AsyncIterator[Settings]:
    """The run's database, broker names of this test's own: counts must not see other tests' messages."""
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}.{uuid.uuid4().hex[:8]}")
    yield own
    connection = await aio_pika.connect(own.amqp_url)
    try:
        await delete_topology(await connection.channel(), Topology.from_settings(own))
    finally:
        await connection.close()


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def scrape(port: int) -> Samples:
    """Every sample of a process's /metrics, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape_text(port))
        for s in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)
