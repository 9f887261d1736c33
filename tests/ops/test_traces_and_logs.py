"""One bid through a real stack: one trace from the gateway through the bids service and RabbitMQ into
the worker's transaction and the event the gateway pushes; one request id in every process's JSON lines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from auction_shared.config import Settings
from tests.ops.conftest import market
from tests.support.environment import env_of
from tests.support.otlp import Collector, Span
from tests.support.processes import Stack
from tests.support.waiting import wait_until
from tests.support.watch import Watch

pytestmark = pytest.mark.slow

SERVER, CONSUMER = 2, 5  # OTLP's SpanKind numbers
FIELDS = ("time", "level", "service", "request_id", "trace_id", "event")


def descends_from(span: Span, ancestor: Span, spans: list[Span]) -> bool:
    by_id = {s.span_id: s for s in spans}
    while span.parent_id and span.parent_id in by_id:
        if span.parent_id == ancestor.span_id:
            return True
        span = by_id[span.parent_id]
    return False


async def test_one_bid_is_one_trace_and_one_request_id_in_every_service(
    own_settings: Settings, tmp_path: Path
) -> None:
    async with Collector() as collector:
        env = env_of(
            own_settings,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            LOG_LEVEL="DEBUG",
        )
        stack = Stack(env, tmp_path)
        async with market(stack, "traced-w1") as m:
            offer_id = m.offer["id"]
            watch = await Watch.open(m.http, stack.gateway_url, m.bidder.token)
            subscribed = await watch.request("subscribe", "subscribed", offer_id=offer_id)
            assert subscribed["event"] == "subscribed"
            rid = f"one-bid-{uuid.uuid4().hex}"
            status, bid = await m.api.bid(m.bidder, offer_id, 25, **{"X-Request-Id": rid})
            assert status == 202, bid
            await watch.until(lambda f: f["event"] == "offerUpdated" and f["data"]["id"] == offer_id)

            def posted() -> list[Span]:
                return [
                    s
                    for s in collector.spans
                    if s.service == "gateway" and s.kind == SERVER and s.name == "POST /v1/bid"
                ]

            (entry,) = await wait_until(posted, 30, "the gateway's span of POST /v1/bid")

            def whole_trace() -> list[Span] | None:
                spans = collector.trace(entry.trace_id)
                kinds = {(s.service, s.kind) for s in spans}
                done = {("bids", SERVER), ("gateway", CONSUMER)} <= kinds and any(
                    s.name == "apply bids" for s in spans
                )
                return spans if done else None

            spans = await wait_until(whole_trace, 30, f"the bid's whole trace in {collector.spans}")

    (apply,) = [s for s in spans if s.service == "bid-worker" and s.name == "apply bids"]
    database = [
        s for s in spans if s.service == "bid-worker" and s.attributes.get("db.system") == "postgresql"
    ]
    assert database and all(descends_from(s, apply, spans) for s in database)
    assert descends_from(apply, entry, spans)
    pushed = [s for s in spans if s.service == "gateway" and s.kind == CONSUMER]
    assert any(descends_from(s, apply, spans) for s in pushed), "the offer.updated the worker caused"

    seen_rid: dict[str, list[dict]] = {}
    for proc in stack.processes:
        for line in proc.output().splitlines():
            record = json.loads(line)  # every line of every process is one JSON object
            assert all(field in record for field in FIELDS), record
            if record["request_id"] == rid:
                seen_rid.setdefault(record["service"], []).append(record)
    assert set(seen_rid) == {"gateway", "bids", "bid-worker"}
    assert {r["trace_id"] for records in seen_rid.values() for r in records} == {entry.trace_id}
