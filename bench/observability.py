"""Report section 5, what watching costs: bid intake with metrics and tracing export on and off.

Issue 12 allows being watched to cost intake at most 5 %: the rate as shipped (metrics served, no
OTLP endpoint, so no instrumentation installed) must stay ≥ 0.95× the rate of the same stack with
observability off (no METRICS_PORT, so no HTTP metrics either). A third configuration exports every
span over OTLP/HTTP to a sink the harness runs (otlp_sink.py), to show what turning tracing on costs.

The same stack (database, broker names, accounts) is restarted before every run in the configuration
the run measures, and the order of the configurations rotates from round to round, so neither a
cold start nor the shared machine's drift falls on one configuration more than on another. Each run
is intake's hey command (same body and token) for a fixed time after a short warm-up on another
offer; its figures are compared with the observability-off run of the same round.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from . import cpu, hey
from .api import Account, PublicApi
from .intake import BID_PRICE, Settle, wait_applied
from .otlp_sink import TraceSink
from .stack import BenchStack

OFF, SHIPPED, TRACING = "observability off", "as shipped", "tracing on"
TARGET = 0.95
OWN_KINDS = ("gateway", "bids", "bid-worker")


@dataclass(frozen=True)
class Config:
    label: str
    metrics: bool
    tracing: bool
    what: str


CONFIGS = (
    Config(OFF, False, False, "no METRICS_PORT: nothing served, no HTTP metrics; no OTLP endpoint"),
    Config(SHIPPED, True, False, "every process serves /metrics; no OTLP endpoint (no instrumentation)"),
    Config(TRACING, True, True, "as shipped, plus every span exported over OTLP/HTTP to the harness's sink"),
)


@dataclass
class ObservedRun:
    label: str
    round: int
    result: hey.HeyResult
    settle: Settle
    # µs of CPU per answered request of the stack's own processes (gateway, bids, workers), until applied.
    cpu_per_request: float
    # The gateway's auction_http_requests_total for POST /v1/bid 202 after the run; None: metrics off.
    counted: float | None = None
    expected_count: int = 0
    exports: int = 0
    spans: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.settle.ok and not self.problems


@dataclass
class Observability:
    seconds: float
    concurrency: int
    rounds: int
    runs: list[ObservedRun] = field(default_factory=list)
    # The unreported first run (round -1), on the stack as it was started.
    settling: ObservedRun | None = None

    def run(self, label: str, round_: int) -> ObservedRun | None:
        return next((r for r in self.runs if r.label == label and r.round == round_), None)

    def ratios(self, label: str, figure: Callable[[ObservedRun], float]) -> list[float]:
        """Per round that has both: `label`'s figure over the observability-off run's figure."""
        out = []
        for n in range(self.rounds):
            run, off = self.run(label, n), self.run(OFF, n)
            if run is not None and off is not None and figure(off):
                out.append(figure(run) / figure(off))
        return out

    def rps_ratios(self, label: str) -> list[float]:
        return self.ratios(label, lambda r: r.result.rps)

    @property
    def shipped_rps_ratio(self) -> float:
        ratios = self.rps_ratios(SHIPPED)
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def problems(self) -> list[str]:
        runs = [*self.runs, *([self.settling] if self.settling else [])]
        return [
            f"{r.label}, {f'round {r.round + 1}' if r.round >= 0 else 'settling run'}: {p}"
            for r in runs
            for p in [*r.settle.problems, *r.problems]
        ]


def order_of(round_: int) -> list[Config]:
    """The configurations rotated by the round: each takes each place once in three rounds."""
    shift = round_ % len(CONFIGS)
    return [*CONFIGS[shift:], *CONFIGS[:shift]]


async def measure(
    stack: BenchStack,
    session: aiohttp.ClientSession,
    seller: Account,
    bidder: Account,
    rounds: int,
    seconds: float,
    concurrency: int,
    warmup_requests: int,
    work_dir: Path,
) -> Observability:
    """Leaves the stack running in the last configuration measured: this section runs last."""
    out = Observability(seconds, concurrency, rounds)
    async with TraceSink() as sink:
        # The first run after the stack starts was the slowest, whatever it measured (fresh database
        # and queues): one run on the stack as it is (as shipped) takes that, and is not reported.
        async def one(config: Config, round_index: int) -> ObservedRun:
            return await _one(
                stack,
                session,
                sink,
                config,
                round_index,
                seller,
                bidder,
                seconds,
                concurrency,
                warmup_requests,
                work_dir,
            )

        out.settling = await one(CONFIGS[1], -1)
        print(f"  settling run on the stack as started: {out.settling.result.rps:.0f} rps", flush=True)
        for n in range(rounds):
            for config in order_of(n):
                env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint} if config.tracing else {}
                # In a thread: the sink must answer while the processes start.
                await asyncio.to_thread(functools.partial(stack.restart, metrics=config.metrics, **env))
                run = await one(config, n)
                out.runs.append(run)
                print(
                    f"  round {n + 1}, {config.label}: {run.result.rps:.0f} rps, p99 "
                    f"{run.result.p99 * 1000:.0f} ms, {run.cpu_per_request:.0f} µs CPU/request, "
                    f"statuses {run.result.statuses} errors {run.result.errors}, spans {run.spans}, "
                    f"ok={run.ok} {out.problems[-2:] if not run.ok else ''}",
                    flush=True,
                )
    return out


async def _one(
    stack: BenchStack,
    session: aiohttp.ClientSession,
    sink: TraceSink,
    config: Config,
    round_: int,
    seller: Account,
    bidder: Account,
    seconds: float,
    concurrency: int,
    warmup_requests: int,
    work_dir: Path,
) -> ObservedRun:
    assert stack.pool is not None
    api = PublicApi(session, stack.gateway_url)
    url = stack.gateway_url + "/v1/bid"
    timeout = seconds + 300
    # Warm-up on an offer of its own: connections opened, caches filled; applied before the run.
    warm_offer = await api.create_offer(seller, f"observability warm-up, {config.label}")
    warm_body = _body(work_dir, "warm-up", warm_offer["id"])
    warm_args = hey.command_line(
        url, requests=warmup_requests, concurrency=concurrency, body_file=warm_body, token=bidder.token
    )
    warm = await asyncio.to_thread(hey.run, warm_args, token=bidder.token, timeout=timeout)
    warm_settle = await wait_applied(
        stack.pool, warm_offer["id"], warm.count(202), warm.total_seconds, time.monotonic()
    )

    offer = await api.create_offer(seller, f"observability, {config.label}, round {round_ + 1}")
    args = hey.command_line(
        url,
        concurrency=concurrency,
        body_file=_body(work_dir, "run", offer["id"]),
        token=bidder.token,
        duration_seconds=seconds,
    )
    sink.reset()
    before = cpu.snapshot(stack.processes)
    result = await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=timeout)
    settle = await wait_applied(
        stack.pool, offer["id"], result.count(202), result.total_seconds, time.monotonic()
    )
    spent = cpu.per_request(before, cpu.snapshot(stack.processes), result.responses)
    run = ObservedRun(config.label, round_, result, settle, sum(spent.get(k, 0.0) for k in OWN_KINDS))
    run.problems += [f"warm-up: {p}" for p in warm_settle.problems]
    run.exports, run.spans = sink.reset()
    run.expected_count = warm.count(202) + result.count(202)
    ports = stack.metrics_ports
    if not config.metrics and ports:
        run.problems.append(f"metrics served with observability off: {ports}")
    if config.metrics and round_ >= 0:  # the settling run's processes have counted earlier sections too
        run.counted = await _gateway_count(session, ports["gateway"])
        if run.counted != run.expected_count:
            run.problems.append(
                f"the gateway's metrics counted {run.counted} POST /v1/bid 202s, hey got {run.expected_count}"
            )
    if config.tracing and run.spans == 0:
        run.problems.append("no span reached the sink")
    if not config.tracing and run.spans:
        run.problems.append(f"{run.spans} spans exported with tracing off")
    return run


def _body(work_dir: Path, what: str, offer_id: str) -> Path:
    body = work_dir / f"bid-observability-{what}.json"
    body.write_bytes(orjson.dumps({"bid_price": float(BID_PRICE), "offer_id": offer_id}))
    return body


async def _gateway_count(session: aiohttp.ClientSession, port: int) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    wanted = {"service": "gateway", "method": "POST", "route": "/v1/bid", "status": "202"}
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "auction_http_requests_total" and s.labels == wanted
    )


def _spread(values: list[float], fmt: Callable[[float], str]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def _times(x: float) -> str:
    return f"{x:.2f}×"


def markdown(run: Observability | None, quick: bool) -> list[str]:
    lines = ["## 5. What watching costs: metrics and tracing\n"]
    if run is None:
        return [*lines, "Not run.\n"]
    lines.append(
        f"Bid intake through the gateway (`hey -z {run.seconds:g}s -c {run.concurrency}`, section 1's "
        f"command otherwise) on the same stack restarted in each of three configurations, {run.rounds} "
        f"round{'s' if run.rounds != 1 else ''}, the order rotating from round to round, after one unreported run on "
        "the stack as started (the first run after a start was the slowest, whatever it measured). Each run "
        "follows a warm-up on another offer; every 202 bid is checked applied once, the gateway's metrics "
        "checked to count every 202 where they are on, and spans checked to reach the sink only where "
        "tracing is on. The restarted processes are not in section 4's peaks. Each figure is a ratio to the "
        "observability-off run of the same round: the median over the rounds, the lowest and highest in "
        "brackets. CPU = µs per request of the gateway, the bids service and the workers, until every bid "
        "is applied. With the metrics off, what still runs per bid is the request id, two message headers "
        "and the few counters of the bid path (bids received, the publish histogram, the worker's), "
        "counted in memory and never served.\n"
    )
    lines.append(
        "| configuration | what runs | rps | rps vs off | p99 vs off | CPU/request vs off | spans exported |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for config in CONFIGS:
        runs = [r for r in run.runs if r.label == config.label]
        if not runs:
            continue
        rps = _spread([r.result.rps for r in runs], lambda x: f"{x:,.0f}")
        base = config.label == OFF
        rps_vs = "1" if base else _spread(run.rps_ratios(config.label), _times)
        p99_vs = "1" if base else _spread(run.ratios(config.label, lambda r: r.result.p99), _times)
        cpu_vs = "1" if base else _spread(run.ratios(config.label, lambda r: r.cpu_per_request), _times)
        spans = (
            f"{sum(r.spans for r in runs):,} in {sum(r.exports for r in runs):,} exports"
            if config.tracing
            else "—"
        )
        lines.append(f"| {config.label} | {config.what} | {rps} | {rps_vs} | {p99_vs} | {cpu_vs} | {spans} |")
    lines.append("")
    lines.append("Every run (rps, p99, µs of CPU per request), in the order run:\n")
    lines.append("| round | order | " + " | ".join(c.label for c in CONFIGS) + " |")
    lines.append("|---|---|" + "---|" * len(CONFIGS))
    for n in range(run.rounds):
        cells = []
        for config in CONFIGS:
            r = run.run(config.label, n)
            cells.append(
                "—"
                if r is None
                else f"{r.result.rps:,.0f} rps, {r.result.p99 * 1000:.0f} ms, {r.cpu_per_request:.0f} µs"
                + ("" if r.result.failures == 0 else f", {r.result.failures} failed")
            )
        order = " → ".join(c.label for c in order_of(n))
        lines.append(f"| {n + 1} | {order} | " + " | ".join(cells) + " |")
    lines.append("")
    if quick:
        lines.append("(Quick mode: one short round; these ratios say nothing.)\n")
    lines.append("Reproduce: `BENCH_ONLY=observability make bench`.\n")
    return lines
