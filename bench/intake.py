"""1. Bid intake (the original's `hey` run) and 2a. how long until every accepted bid is applied."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson

from . import cpu, hey
from .api import Account, PublicApi
from .memory import kind_of
from .profile import Profiler
from .stack import BenchStack

# One price for every request: hey sends the same body each time, so the first bid processed leads
# and every later one is rejected as too low; the offer must end at exactly this price.
BID_PRICE = Decimal("4321.50")


@dataclass
class Settle:
    """What the database holds once the workers caught up with one hey run."""

    accepted: int
    applied: int = 0
    rows: int = 0
    leading: int = 0
    final_price: Decimal | None = None
    max_sent: Decimal = BID_PRICE
    seconds_after_hey: float = float("nan")
    end_to_end_bids_per_s: float = float("nan")
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class IntakeRun:
    concurrency: int
    requests: int
    stack: hey.HeyResult
    baseline: hey.HeyResult
    settle: Settle
    # Microseconds of CPU per request by kind of process (see cpu.py), for the stack and the baseline.
    stack_cpu: dict[str, float] = field(default_factory=dict)
    baseline_cpu: dict[str, float] = field(default_factory=dict)
    # The bare pipeline (proxy -> handler publishing with a confirm -> consumer applying in batches).
    pipeline: hey.HeyResult | None = None
    pipeline_settle: Settle | None = None
    pipeline_cpu: dict[str, float] = field(default_factory=dict)
    # Which round of this concurrency (1, 2, ...); see `measure`.
    round: int = 1

    @property
    def rps_ratio(self) -> float:
        return self.stack.rps / self.baseline.rps if self.baseline.rps else float("nan")

    @property
    def p99_ratio(self) -> float:
        return self.stack.p99 / self.baseline.p99 if self.baseline.p99 else float("nan")

    @property
    def pipeline_rps_ratio(self) -> float:
        return self.stack.rps / self.pipeline.rps if self.pipeline and self.pipeline.rps else float("nan")

    @property
    def pipeline_p99_ratio(self) -> float:
        return self.stack.p99 / self.pipeline.p99 if self.pipeline and self.pipeline.p99 else float("nan")

    @property
    def bare_pipeline_ratio(self) -> float:
        """The bare pipeline's own rate against the one-hop baseline: how far the same durable work
        gets without the stack, the yardstick beside the stack's one-hop ratio."""
        return self.pipeline.rps / self.baseline.rps if self.pipeline and self.baseline.rps else float("nan")


async def wait_counted(
    pool: asyncpg.Pool, offer_id: str, accepted: int, hey_ended: float, answered: int
) -> Settle:
    """The bare pipeline's check: its consumer applies no rules, so only counts are compared; and
    every answer it gave must be a 202 (a baseline that fails fast is no baseline: it answered 500
    to every bid after ConfirmedChannel.publish went, and the check passed on 0 applied of 0)."""
    settle = Settle(accepted)
    if answered != accepted:
        settle.problems.append(f"bare pipeline: {answered - accepted} of {answered} answers were not 202")
    deadline = hey_ended + 60 + accepted / 200
    offer = uuid.UUID(offer_id)
    while (applied := await pool.fetchval("SELECT bid_count FROM offers WHERE id = $1", offer)) < accepted:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    settle.seconds_after_hey = time.monotonic() - hey_ended
    await asyncio.sleep(1.0)  # a bid applied twice would show up as a count above the 202s
    row = await pool.fetchrow(
        "SELECT bid_count, (SELECT count(*) FROM bids WHERE offer_id = $1) AS rows FROM offers WHERE id = $1",
        offer,
    )
    settle.applied, settle.rows = row["bid_count"], row["rows"]
    if settle.applied != accepted or settle.rows != accepted:
        settle.problems.append(
            f"bare pipeline: {settle.applied} applied, {settle.rows} rows for {accepted} answered 202 ({applied})"
        )
    return settle


async def wait_applied(
    pool: asyncpg.Pool,
    offer_id: str,
    accepted: int,
    hey_seconds: float,
    hey_ended: float,
    maybe_queued: int = 0,
) -> Settle:
    """Poll the offer until its bid_count reaches the 202 count, then check every bid landed once.

    `maybe_queued`: the bids answered 503, which docs/API.md allows to be queued or not; each of them
    may be applied (once). They are never a correctness failure; the non-2xx target counts them."""
    settle = Settle(accepted)
    deadline = hey_ended + 60 + accepted / 200
    offer = uuid.UUID(offer_id)
    while True:
        row = await pool.fetchrow("SELECT bid_count, bid_price FROM offers WHERE id = $1", offer)
        settle.applied = row["bid_count"]
        if settle.applied >= accepted:
            settle.seconds_after_hey = time.monotonic() - hey_ended
            break
        if time.monotonic() > deadline:
            settle.problems.append(
                f"only {settle.applied} of {accepted} accepted bids applied "
                f"{time.monotonic() - hey_ended:.0f}s after hey ended"
            )
            break
        await asyncio.sleep(0.05)
    # A moment more: a bid applied twice would show up as a count above the 202s.
    await asyncio.sleep(1.0)
    row = await pool.fetchrow(
        "SELECT o.bid_count, o.bid_price,"
        " (SELECT count(*) FROM bids b WHERE b.offer_id = o.id) AS rows,"
        " (SELECT count(*) FROM bids b WHERE b.offer_id = o.id AND b.status = 'leading') AS leading"
        " FROM offers o WHERE o.id = $1",
        offer,
    )
    settle.applied, settle.final_price = row["bid_count"], row["bid_price"]
    settle.rows, settle.leading = row["rows"], row["leading"]
    if not accepted <= settle.applied <= accepted + maybe_queued:
        settle.problems.append(
            f"bid_count {settle.applied} != {accepted} bids answered 202"
            + (f" (+ up to {maybe_queued} answered 503)" if maybe_queued else "")
        )
    if settle.rows != settle.applied:  # a bid applied twice counts twice but has one row
        settle.problems.append(f"{settle.rows} bid rows != bid_count {settle.applied}")
    if accepted and settle.final_price != settle.max_sent:
        settle.problems.append(f"final price {settle.final_price} != max price sent {settle.max_sent}")
    if accepted and settle.leading != 1:
        settle.problems.append(f"{settle.leading} bids leading, expected exactly 1")
    if settle.seconds_after_hey == settle.seconds_after_hey:
        settle.end_to_end_bids_per_s = accepted / (hey_seconds + settle.seconds_after_hey)
    return settle


async def measure(
    stack: BenchStack,
    api: PublicApi,
    seller: Account,
    bidder: Account,
    requests: int,
    concurrency: tuple[int, ...],
    baseline_url: str,
    pipeline_url: str | None,
    work_dir: Path,
    profiler: Profiler,
    rounds: int = 1,
) -> list[IntakeRun]:
    """`rounds` runs of each path at each concurrency. A round runs the paths back to back, so all
    of them see the same machine; the order turns round every other round (baseline first, then
    the stack first), so a machine slowing down or speeding up during a round favours neither."""
    runs = []
    for c in concurrency:
        for n in range(1, rounds + 1):
            run = await _round(
                stack, api, seller, bidder, requests, c, n, baseline_url, pipeline_url, work_dir, profiler
            )
            runs.append(run)
            print(
                f"  intake -c {c}{f' round {n}' if rounds > 1 else ''}: {run.stack.rps:.0f} rps "
                f"(baseline {run.baseline.rps:.0f}), p99 {run.stack.p99 * 1000:.0f} ms "
                f"(baseline {run.baseline.p99 * 1000:.0f}), bare pipeline "
                f"{run.pipeline.rps if run.pipeline else float('nan'):.0f} rps, "
                f"statuses {run.stack.statuses} errors {run.stack.errors}; applied in "
                f"{run.settle.seconds_after_hey:.1f}s after hey, ok={run.settle.ok} {run.settle.problems}",
                flush=True,
            )
    return runs


async def _round(
    stack: BenchStack,
    api: PublicApi,
    seller: Account,
    bidder: Account,
    requests: int,
    c: int,
    n: int,
    baseline_url: str,
    pipeline_url: str | None,
    work_dir: Path,
    profiler: Profiler,
) -> IntakeRun:
    assert stack.pool is not None
    timeout = 300 + requests / 100
    # Each round bids on an offer of its own: its checks count that offer's bids only.
    offer = await api.create_offer(seller, f"hey -c {c} round {n}")
    body = work_dir / f"bid-c{c}-r{n}.json"
    body.write_bytes(orjson.dumps({"bid_price": float(BID_PRICE), "offer_id": offer["id"]}))

    async def baseline_run() -> tuple[hey.HeyResult, dict[str, float]]:
        args = hey.command_line(
            baseline_url, requests=requests, concurrency=c, body_file=body, token=bidder.token
        )
        before = cpu.snapshot(stack.processes)
        result = await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=timeout)
        return result, cpu.per_request(before, cpu.snapshot(stack.processes), result.responses)

    async def stack_run() -> tuple[hey.HeyResult, Settle, dict[str, float]]:
        assert stack.pool is not None
        args = hey.command_line(
            stack.gateway_url + "/v1/bid",
            requests=requests,
            concurrency=c,
            body_file=body,
            token=bidder.token,
        )
        for proc in stack.processes:
            if kind_of(proc.name) in ("gateway", "bids", "bid-worker") and proc.proc.poll() is None:
                profiler.start(f"intake-c{c}-r{n}-{proc.name}", proc.pid)
        before = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
        result = await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=timeout)
        ended = time.monotonic()
        settle = await wait_applied(
            stack.pool, offer["id"], result.count(202), result.total_seconds, ended, result.count(503)
        )
        # Until every bid is applied: the workers' share of a request is spent partly after hey ends.
        after = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
        profiler.stop()
        return result, settle, cpu.per_request(before, after, result.responses)

    async def pipeline_run() -> tuple[hey.HeyResult, Settle, dict[str, float]] | None:
        if pipeline_url is None:
            return None
        return await _pipeline_run(
            stack, api, seller, bidder, pipeline_url, requests, c, n, work_dir, timeout
        )

    if n % 2:
        baseline, baseline_cpu = await baseline_run()
        pipeline = await pipeline_run()
        result, settle, stack_cpu = await stack_run()
    else:
        result, settle, stack_cpu = await stack_run()
        pipeline = await pipeline_run()
        baseline, baseline_cpu = await baseline_run()
    return IntakeRun(
        c, requests, result, baseline, settle, stack_cpu, baseline_cpu, *(pipeline or ()), round=n
    )


async def _pipeline_run(
    stack: BenchStack,
    api: PublicApi,
    seller: Account,
    bidder: Account,
    url: str,
    requests: int,
    concurrency: int,
    n: int,
    work_dir: Path,
    timeout: float,
) -> tuple[hey.HeyResult, Settle, dict[str, float]]:
    """hey against the bare pipeline, on an offer of its own; CPU counted until its consumer caught up."""
    assert stack.pool is not None
    offer = await api.create_offer(seller, f"bare pipeline -c {concurrency} round {n}")
    body = work_dir / f"bid-pipeline-c{concurrency}-r{n}.json"
    body.write_bytes(orjson.dumps({"bid_price": float(BID_PRICE), "offer_id": offer["id"]}))
    args = hey.command_line(
        url, requests=requests, concurrency=concurrency, body_file=body, token=bidder.token
    )
    before = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
    result = await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=timeout)
    settle = await wait_counted(
        stack.pool, offer["id"], result.count(202), time.monotonic(), result.responses
    )
    after = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
    return result, settle, cpu.per_request(before, after, result.responses)
