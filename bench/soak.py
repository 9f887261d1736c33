"""4b. Steady load at half the measured intake rate: does any service's memory keep growing?"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from . import hey
from .api import Account, PublicApi
from .intake import BID_PRICE, Settle, wait_applied
from .memory import MemoryWatch, kind_of
from .stack import BenchStack

SOAK_CONCURRENCY = 20
# Requests per hey run at most, well below hey's cap (hey.MAX_REPORTED): a longer soak runs hey
# several times in a row (600 s at 1,700 requests/s is 1.02 million).
PART_REQUESTS = 500_000


@dataclass
class Soak:
    seconds: float
    target_rps: float
    warmup_seconds: float
    # hey runs in a row that make up the soak, each `seconds / parts` long.
    parts: int = 1
    result: hey.HeyResult | None = None
    settle: Settle | None = None
    # process name -> (seconds into the soak, RSS bytes)
    series: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def rss_after_warmup(self, name: str) -> int:
        points = [rss for at, rss in self.series.get(name, []) if at >= self.warmup_seconds]
        return points[0] if points else 0

    def rss_at_end(self, name: str) -> int:
        points = self.series.get(name, [])
        # The mean of the last three readings: one garbage collection does not decide it.
        last = [rss for _, rss in points[-3:]]
        return int(sum(last) / len(last)) if last else 0

    def growth(self, name: str) -> float:
        start = self.rss_after_warmup(name)
        return (self.rss_at_end(name) - start) / start if start else float("nan")

    @property
    def services(self) -> list[str]:
        return sorted(self.series, key=lambda n: (kind_of(n), n))

    @property
    def ok(self) -> bool:
        return not self.problems and (self.settle is None or self.settle.ok)


async def measure(
    stack: BenchStack,
    api: PublicApi,
    seller: Account,
    bidder: Account,
    rate: float,
    seconds: float,
    sample_seconds: float,
    memory: MemoryWatch,
    work_dir: Path,
) -> Soak:
    assert stack.pool is not None
    # Past the first fifth (at most a minute) the caches are warm and pools full.
    parts = max(1, math.ceil(rate * seconds / PART_REQUESTS))
    soak = Soak(seconds, rate, warmup_seconds=min(60.0, seconds / 5), parts=parts)
    offer = await api.create_offer(seller, "soak")
    body = work_dir / "bid-soak.json"
    body.write_bytes(orjson.dumps({"bid_price": float(BID_PRICE), "offer_id": offer["id"]}))
    args = hey.command_line(
        stack.gateway_url + "/v1/bid",
        concurrency=SOAK_CONCURRENCY,
        body_file=body,
        token=bidder.token,
        duration_seconds=seconds / parts,
        rate_per_worker=max(rate / SOAK_CONCURRENCY, 0.1),
    )

    async def run_parts() -> list[hey.HeyResult]:
        timeout = seconds / parts + 120
        return [
            await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=timeout) for _ in range(parts)
        ]

    started = time.monotonic()
    running = asyncio.ensure_future(run_parts())
    while not running.done():
        sample = memory.read()
        for name, rss in sample.rss.items():
            soak.series.setdefault(name, []).append((sample.at - started, rss))
        await asyncio.wait([running], timeout=sample_seconds)
    done = await running
    soak.result = hey.combined(done, done[0].command)
    ended = time.monotonic()
    sample = memory.read()
    for name, rss in sample.rss.items():
        soak.series.setdefault(name, []).append((sample.at - started, rss))
    soak.settle = await wait_applied(
        stack.pool, offer["id"], soak.result.count(202), soak.result.total_seconds, ended
    )
    if soak.result.failures:
        soak.problems.append(
            f"{soak.result.failures} requests without a 2xx: {soak.result.statuses} {soak.result.errors}"
        )
    print(
        f"  soak {seconds:.0f}s at {rate:.0f} rps: {soak.result.rps:.0f} rps, growth "
        + ", ".join(f"{n} {soak.growth(n) * 100:+.1f}%" for n in soak.services),
        flush=True,
    )
    return soak
