"""Every Prometheus metric of the system, defined once; each process exports the ones it moves.

Names are `auction_*`; the README's Operations section says what each means. A process serves its
registry on its own METRICS_PORT, never on the public API port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("auction_shared.requests")

# Seconds: from sub-millisecond (a cached intake check) to the 5 s dependency timeout and beyond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Ends fire from a timer; a healthy one is late by milliseconds, a stalled one by seconds.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# --- HTTP (every service; `service` tells the gateway's /v1/bid from the bids service's) ---
HTTP_REQUESTS = Counter(
    "auction_http_requests",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "auction_http_request_duration_seconds",
    "Time from request to response, by route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)

# --- bids: intake (bids service) and judging (bid-worker) ---
BIDS_RECEIVED = Counter("auction_bids_received", "Bids accepted at intake and confirmed by RabbitMQ (202).")
BIDS_APPLIED = Counter("auction_bids_applied", "Bids the bid-worker committed as the offer's new leader.")
BIDS_REJECTED = Counter(
    "auction_bids_rejected",
    "Bids refused: at intake (4xx) or by the bid-worker's rule, by reason.",
    ["stage", "reason"],
)
BROKER_PUBLISH = Histogram(
    "auction_broker_publish_seconds",
    "Publish until RabbitMQ's confirm, by routing key (`user.*` for every private key).",
    ["routing_key"],
    buckets=LATENCY_BUCKETS,
)


# The labelled children of BROKER_PUBLISH, looked up once per label rather than on every publish.
_published_by: dict[str, Histogram] = {}


def published(routing_key: str) -> Histogram:
    """BROKER_PUBLISH for `routing_key`: private keys (`user.<id>`) share one label, so the series
    do not grow with the number of users."""
    label = "user.*" if routing_key.startswith("user.") else routing_key
    child = _published_by.get(label)
    if child is None:
        child = _published_by[label] = BROKER_PUBLISH.labels(label)
    return child


# --- bid-worker shards ---
SHARD_BATCH = Histogram(
    "auction_shard_batch_size",
    "Bids applied in one transaction, per shard.",
    ["shard"],
    buckets=BATCH_BUCKETS,
)
SHARD_APPLY = Histogram(
    "auction_shard_apply_seconds",
    "One batch's database transaction, lock to commit, per shard.",
    ["shard"],
    buckets=LATENCY_BUCKETS,
)
SHARD_LAG = Gauge(
    "auction_shard_lag_seconds",
    "Age of the oldest bid of the shard not yet applied (0 when the shard is caught up).",
    ["shard"],
)
SHARD_HANDOVERS = Counter(
    "auction_shard_handovers", "Shards this worker handed to their owner (rebalancing).", ["shard"]
)
DEAD_LETTERS = Counter(
    "auction_dead_letters", "Messages rejected to the dead-letter queue, by reason.", ["reason"]
)
DEAD_LETTER_DEPTH = Gauge(
    "auction_dead_letter_depth",
    "Messages waiting in the dead-letter queue at the bid-worker's last look (every 15 s).",
)

# --- transactional outbox (offers service) ---
OUTBOX_BACKLOG = Gauge("auction_outbox_backlog", "Outbox rows not yet published, at the last relay pass.")
OUTBOX_LAG = Gauge(
    "auction_outbox_relay_lag_seconds", "Age of the oldest row the relay published in its last batch."
)
OUTBOX_PUBLISHED = Counter("auction_outbox_published", "Outbox rows published and removed.")

# --- WebSocket hub (gateway) ---
WS_SOCKETS = Gauge("auction_ws_sockets", "Open WebSocket connections of this gateway.")
WS_FRAMES = Counter("auction_ws_frames_sent", "Frames sent to WebSocket clients.")
WS_SLOW_CLOSED = Counter(
    "auction_ws_slow_client_disconnects", "WebSocket clients closed (1008) for falling too far behind."
)

# --- auction ends ---
ENDS_FIRED = Counter("auction_ends_fired", "Offers closed because their ends_at passed.")
END_LATENESS = Histogram(
    "auction_end_lateness_seconds",
    "How long after ends_at an offer was actually closed.",
    buckets=LATENESS_BUCKETS,
)


# The process's name in the `service` label of the HTTP metrics; set once by `observe`.
_service = "unknown"


def set_service(name: str) -> None:
    global _service
    _service = name


def end_fired(lateness_seconds: float) -> None:
    """An offer closed because its ends_at passed, `lateness_seconds` after it (the closer calls this)."""
    ENDS_FIRED.inc()
    END_LATENESS.observe(max(0.0, lateness_seconds))


def shard_label(index: int) -> str:
    return f"{index:02d}"


def serve_metrics(host: str, port: int) -> None:
    """GET /metrics on its own port, in a thread: it answers even while the event loop is busy."""
    start_http_server(port, addr=host)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The labelled children, looked up once per route and status rather than on every request.
_answered_by: dict[tuple[str, str, int], Counter] = {}
_timed_by: dict[tuple[str, str], Histogram] = {}


# Any token is a method to aiohttp: others are counted as one, so a client cannot grow the label set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _answered(method: str, route: str, status: int) -> Counter:
    key = (method, route, status)
    child = _answered_by.get(key)
    if child is None:
        child = _answered_by[key] = HTTP_REQUESTS.labels(_service, method, route, str(status))
    return child


def _timed(method: str, route: str) -> Histogram:
    key = (method, route)
    child = _timed_by.get(key)
    if child is None:
        child = _timed_by[key] = HTTP_LATENCY.labels(_service, method, route)
    return child


def _route_of(request: web.Request) -> tuple[str, str]:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    return (request.method if request.method in METHODS else "OTHER"), route


def _requests_middleware(measured: bool) -> Middleware:
    """The middleware that sees the status each client got (it sits outside the problem middleware):
    measured, it counts and times every request by its route template (never the raw path: ids would
    explode the label set); either way DEBUG logs a line per request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            method, route = _route_of(request)
            if measured:
                _answered(method, route, status).inc()
                _timed(method, route).observe(time.perf_counter() - started)
            if log.isEnabledFor(logging.DEBUG):  # a line per request costs intake throughput: DEBUG only
                log.debug("%s %s answered %d", method, route, status)

    return middleware


http_metrics_middleware = _requests_middleware(measured=True)
# DEBUG's line per request, for a process whose HTTP metrics are off (no METRICS_PORT).
request_log_middleware = _requests_middleware(measured=False)


def http_middlewares(metrics_port: int, log_level: str) -> list[Middleware]:
    """The HTTP metrics only where someone can read them: with no METRICS_PORT nothing serves them, so
    a request is neither counted nor timed (`make bench`'s observability section measures what that
    saves). DEBUG keeps its line per request either way."""
    if metrics_port:
        return [http_metrics_middleware]
    return [request_log_middleware] if log_level == "DEBUG" else []
