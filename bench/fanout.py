"""3. Live fan-out: authenticated WebSocket clients timing `offerCreated` after `POST /v1/offer` returns.

Each measurement runs against the gateway's hub and against the bare broadcast, with the same
client processes, client count and payload. Paced: one offer at a time, the next once every client
got the last (latency). Burst: a batch of offers posted at once (deliveries per second).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from tests.support.processes import ROOT

# One aiohttp client process cannot read 5,000 sockets fast enough on its own.
CLIENTS_PER_PROCESS = 2500
EVENT_TIMEOUT = 60.0

PostOffer = Callable[[], Awaitable[str]]


@dataclass
class FanoutRun:
    target: str
    clients: int
    connected: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, paced offers
    paced_deliveries_per_s: float = float("nan")
    burst_deliveries_per_s: float = float("nan")
    expected: int = 0
    received: int = 0
    problems: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class FanoutPair:
    clients: int
    hub: FanoutRun
    bare: FanoutRun

    @property
    def p99_ratio(self) -> float:
        return self.hub.p99 / self.bare.p99 if self.bare.p99 else float("nan")

    @property
    def deliveries_ratio(self) -> float:
        return (
            self.hub.burst_deliveries_per_s / self.bare.burst_deliveries_per_s
            if self.bare.burst_deliveries_per_s
            else float("nan")
        )


class ClientProcess:
    """One `python -m bench.listeners` child and what it has said so far."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.report: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self.done: dict[str, asyncio.Event] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, count: int, tokens: list[str]) -> ClientProcess:
        env = dict(os.environ, BENCH_TOKENS=",".join(tokens), PYTHONUNBUFFERED="1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.listeners",
            url,
            str(count),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**30,
        )
        return cls(proc)

    def event(self, offer_id: str) -> asyncio.Event:
        return self.done.setdefault(offer_id, asyncio.Event())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode().strip()
            if text.startswith("ready "):
                self.ready.set_result(int(text.split()[1]))
            elif text.startswith("done "):
                self.event(text.split()[1]).set()
            elif text.startswith("{"):
                self.report.set_result(orjson.loads(text))
        for future in (self.ready, self.report):
            if not future.done():
                future.set_exception(RuntimeError(f"listener exited ({await self.proc.wait()})"))

    async def finish(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"report\n")
        await self.proc.stdin.drain()
        try:
            return await asyncio.wait_for(self.report, 120)
        finally:
            if self.proc.returncode is None:
                try:
                    await asyncio.wait_for(self.proc.wait(), 30)
                except asyncio.TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()


async def measure_one(
    target: str,
    url: str,
    clients: int,
    tokens: list[str],
    post_offer: PostOffer,
    paced: int,
    burst: int,
) -> FanoutRun:
    run = FanoutRun(target, clients)
    shares = [CLIENTS_PER_PROCESS] * (clients // CLIENTS_PER_PROCESS)
    if clients % CLIENTS_PER_PROCESS:
        shares.append(clients % CLIENTS_PER_PROCESS)
    procs = [await ClientProcess.start(url, n, tokens) for n in shares]
    returned: dict[str, float] = {}
    paced_ids: list[str] = []
    burst_ids: list[str] = []
    burst_started = 0.0
    try:
        run.connected = sum(await asyncio.wait_for(asyncio.gather(*(p.ready for p in procs)), 300))
        if run.connected < clients:
            run.problems.append(f"only {run.connected} of {clients} clients authenticated")

        async def delivered(offer_id: str) -> None:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(p.event(offer_id).wait() for p in procs)), EVENT_TIMEOUT
                )
            except asyncio.TimeoutError:
                run.problems.append(f"offer {offer_id} not delivered to every client in {EVENT_TIMEOUT:.0f}s")

        for _ in range(paced):
            offer_id = await post_offer()
            returned[offer_id] = time.monotonic()
            paced_ids.append(offer_id)
            await delivered(offer_id)

        async def post_one() -> None:
            offer_id = await post_offer()
            returned[offer_id] = time.monotonic()
            burst_ids.append(offer_id)

        burst_started = time.monotonic()
        await asyncio.gather(*(post_one() for _ in range(burst)))
        await asyncio.gather(*(delivered(i) for i in burst_ids))
    finally:
        reports = await asyncio.gather(*(p.finish() for p in procs), return_exceptions=True)
    received: dict[str, list[float]] = {}
    for report in reports:
        if isinstance(report, BaseException):
            run.problems.append(f"a client process failed: {report!r}")
            continue
        for offer_id, times in report["received"].items():
            received.setdefault(offer_id, []).extend(times)
        if report["closed"]:
            run.problems.append(f"{report['closed']} sockets closed by the server: {report['errors'][:3]}")
    run.expected = run.connected * (len(paced_ids) + len(burst_ids))
    run.received = sum(len(received.get(i, ())) for i in paced_ids + burst_ids)
    if run.received < run.expected:
        run.problems.append(f"{run.expected - run.received} of {run.expected} deliveries missing")
    if run.received > run.expected:
        run.problems.append(f"{run.received - run.expected} deliveries more than sent (duplicates)")
    rates = []
    for offer_id in paced_ids:
        times = received.get(offer_id, [])
        run.latencies.extend(t - returned[offer_id] for t in times)
        if times:
            rates.append(len(times) / max(max(times) - returned[offer_id], 1e-6))
    if rates:
        run.paced_deliveries_per_s = statistics.median(rates)
    burst_times = [t for i in burst_ids for t in received.get(i, ())]
    if burst_times:
        run.burst_deliveries_per_s = len(burst_times) / max(max(burst_times) - burst_started, 1e-6)
    print(
        f"  fan-out {target} x{clients}: p50 {run.p50 * 1000:.0f} ms p99 {run.p99 * 1000:.0f} ms, "
        f"burst {run.burst_deliveries_per_s:.0f} deliveries/s, ok={run.ok} {run.problems}",
        flush=True,
    )
    return run
