"""METRICS_PORT is also the switch of the HTTP metrics: a process whose metrics nobody can scrape does not
count or time its requests (what that saves is measured by `make bench`'s observability section), and
LOG_LEVEL=DEBUG still writes its line per request."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from auction_shared.config import Settings
from auction_shared.web import base_app

ROUTE = "/switch-test/{item}"


def requests_counted() -> float:
    """auction_http_requests_total of ROUTE, whatever the process's `service` label is."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "auction_http_requests_total" and s.labels.get("route") == ROUTE
    )


async def answer_once(aiohttp_client, settings: Settings) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = base_app(settings)
    app.router.add_get(ROUTE, hello)
    client = await aiohttp_client(app)
    resp = await client.get("/switch-test/1")
    assert resp.status == 200 and await resp.text() == "hello"


@pytest.fixture
def plain() -> Settings:
    return replace(Settings(), jwt_secret=secrets.token_hex(32))


async def test_with_a_metrics_port_every_request_is_counted(aiohttp_client, plain: Settings) -> None:
    before = requests_counted()
    await answer_once(aiohttp_client, replace(plain, metrics_port=9100))
    assert requests_counted() == before + 1


async def test_without_one_nothing_is_counted_and_debug_still_logs_each_request(
    aiohttp_client, plain: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    before = requests_counted()
    with caplog.at_level(logging.DEBUG, logger="auction_shared.requests"):
        await answer_once(aiohttp_client, replace(plain, metrics_port=0, log_level="DEBUG"))
    assert requests_counted() == before
    assert f"GET {ROUTE} answered 200" in caplog.messages
