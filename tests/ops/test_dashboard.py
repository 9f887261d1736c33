"""Every metric a dashboard panel queries is one that a live scrape of the stack (and of RabbitMQ's own
Prometheus plugin) exports: a renamed metric cannot leave a panel silently empty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from auction_shared.config import Settings
from tests.ops.conftest import judged_bid, market, scrape_text
from tests.support.environment import env_of
from tests.support.processes import ROOT, Stack

pytestmark = pytest.mark.slow

DASHBOARDS = ROOT / "deploy" / "observability" / "grafana" / "dashboards"
RABBITMQ_METRICS = "http://127.0.0.1:15692/metrics"
METRIC = re.compile(r"\b((?:auction|rabbitmq)_[a-z0-9_]+)\b")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)


def queried() -> dict[str, set[str]]:
    """Metric name -> titles of the panels that query it, over every shipped dashboard."""
    names: dict[str, set[str]] = {}
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                for name in METRIC.findall(target["expr"]):
                    names.setdefault(name, set()).add(panel["title"])
    return names


def exported(text: str) -> set[str]:
    return {m for m in SAMPLE.findall(text) if not m.startswith("#")}


async def test_every_metric_a_panel_queries_is_exported(own_settings: Settings, tmp_path: Path) -> None:
    stack = Stack(env_of(own_settings), tmp_path)
    stack.metrics = {}
    async with market(stack, "dashboard-w1") as m:
        for price in (11, 10.5):  # one leads, one is refused by the rule
            await judged_bid(m.api, m.bidder, m.offer["id"], price)
        names: set[str] = set()
        for port in stack.metrics.values():
            names |= exported(scrape_text(port))
        try:
            async with m.http.get(RABBITMQ_METRICS) as resp:
                names |= exported(await resp.text())
        except aiohttp.ClientError as exc:
            pytest.fail(f"RabbitMQ's Prometheus plugin does not answer ({exc}): enable rabbitmq_prometheus")

    wanted = queried()
    assert wanted, "the dashboard queries no metric"
    missing = {name: titles for name, titles in wanted.items() if name not in names}
    assert not missing, f"queried by panels but exported by no process: {missing}"
