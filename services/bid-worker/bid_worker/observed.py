"""What the bid-worker tells operators: a trace span, metrics and debug lines per batch, in a few calls.

The batch's span continues the trace of its first message (the others are linked), so one bid is
followed from the gateway through RabbitMQ into the worker's transaction and the events it causes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

from opentelemetry import trace

from auction_shared.observability import request_id
from auction_shared.observability.metrics import (
    BIDS_APPLIED,
    BIDS_REJECTED,
    DEAD_LETTERS,
    SHARD_APPLY,
    SHARD_BATCH,
    SHARD_HANDOVERS,
    SHARD_LAG,
    end_fired,
    shard_label,
)
from auction_shared.observability.tracing import context_of, continuing, link_to, seconds_since_published

from .shards import Delivery

log = logging.getLogger("bid_worker")
tracer = trace.get_tracer("bid_worker")
T = TypeVar("T")


class Judged(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> object: ...


async def batch(
    shard: int,
    messages: Sequence[Delivery],
    caught_up: Callable[[], bool],
    work: Awaitable[T],
) -> T:
    """Run `work` (the batch's handling) inside its span; record its size, time and the shard's lag.

    `caught_up` is called afterwards: true when nothing more waits in the shard's inbox."""
    label = shard_label(shard)
    SHARD_LAG.labels(label).set(seconds_since_published(messages[0].headers) or 0.0)
    links = [link for m in messages[1:] if (link := link_to(m.headers)) is not None]
    started = time.perf_counter()
    with tracer.start_as_current_span(
        "apply bids",
        context=context_of(messages[0].headers),
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={"auction.shard": label, "auction.batch_size": len(messages)},
    ):
        request_id.adopt(messages[0].headers)
        result = await work
    SHARD_APPLY.labels(label).observe(time.perf_counter() - started)
    if caught_up():
        SHARD_LAG.labels(label).set(0)
    if log.isEnabledFor(logging.DEBUG):  # a line per bid, under its own request id: DEBUG only
        for message in messages:
            with continuing(message.headers):
                log.debug("shard %s: handled message %s", label, message.message_id)
    return result


def batch_size(shard: int, items: int) -> None:
    """The bids (and closes) one transaction applied: a message may hold several bids."""
    SHARD_BATCH.labels(shard_label(shard)).observe(items)


def started(shards: int) -> None:
    """Export every shard's series from the start (at zero), so a dashboard shows a quiet shard as
    quiet rather than as missing."""
    for shard in range(shards):
        label = shard_label(shard)
        SHARD_LAG.labels(label).set(0)
        SHARD_HANDOVERS.labels(label)
        SHARD_BATCH.labels(label)
        SHARD_APPLY.labels(label)
    DEAD_LETTERS.labels("malformed")


def judged(decisions: Sequence[Judged]) -> None:
    """Count a committed batch's decisions: the new leaders, and the refused by their reason."""
    # Counted first, then one increment per series: a labelled increment costs a lock and a lookup,
    # a batch holds up to a thousand decisions and only a few reasons.
    rejected = Counter(d.reason for d in decisions if d.status == "rejected")
    applied = len(decisions) - rejected.total()
    for reason, count in rejected.items():
        BIDS_REJECTED.labels("worker", str(reason)).inc(count)
    if applied:
        BIDS_APPLIED.inc(applied)


def ends_fired(lateness: Iterable[timedelta]) -> None:
    """Offers a committed batch ended (their close came in), each this long after its ends_at."""
    for late in lateness:
        end_fired(late.total_seconds())


def dead_lettered(reason: str) -> None:
    DEAD_LETTERS.labels(reason).inc()


def handed_over(shard: int) -> None:
    SHARD_HANDOVERS.labels(shard_label(shard)).inc()
