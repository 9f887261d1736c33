"""1b. CPU per bid at a fixed rate: what each process spends on one bid when the machine is not saturated.

At saturation every process also pays for waiting on a CPU (more wake-ups, smaller batches), and the
two cores are shared with other users, so a change's cost is hard to see there. Here hey sends the
same number of requests per second to the stack and to both baselines, and each process's CPU is
divided by the requests answered (for the stack and the bare pipeline, until every bid is applied).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from . import cpu, hey
from .api import Account, PublicApi
from .intake import BID_PRICE, Settle, wait_applied, wait_counted
from .stack import BenchStack

# hey's workers at the fixed rate; each sends rate / WORKERS requests per second.
WORKERS = 10
STACK, ONE_HOP, PIPELINE = "gateway → bids", "bare proxy → bare app", "bare pipeline"
# Issue 14's ceilings for the two Python hops of a bid, in µs of CPU per bid at a fixed rate.
CEILINGS = {"gateway": 450.0, "bids": 650.0}
ROW_ORDER = (
    "gateway",
    "bids",
    "bid-worker",
    "bare-proxy",
    "bare-intake",
    "bare-pipeline-proxy",
    "bare-pipeline",
    "bare-pipeline-consumer",
    "rabbitmq*",
    "postgres*",
    "postgres (own db)",
    "hey",
)


@dataclass
class FixedRatePath:
    label: str
    result: hey.HeyResult
    cpu: dict[str, float]
    settle: Settle | None = None


@dataclass
class FixedRate:
    rps: float
    seconds: float
    paths: list[FixedRatePath] = field(default_factory=list)

    def path(self, label: str) -> FixedRatePath | None:
        return next((p for p in self.paths if p.label == label), None)

    @property
    def problems(self) -> list[str]:
        return [f"{p.label}: {x}" for p in self.paths if p.settle for x in p.settle.problems]


async def measure(
    stack: BenchStack,
    api: PublicApi,
    seller: Account,
    bidder: Account,
    rate: float,
    seconds: float,
    urls: dict[str, str],
    work_dir: Path,
) -> FixedRate:
    """hey -z `seconds` at `rate` requests/s against each of `urls` (label -> URL), one after the other."""
    assert stack.pool is not None
    out = FixedRate(rate, seconds)
    for label, url in urls.items():
        offer = await api.create_offer(seller, f"fixed rate {label}")
        body = work_dir / f"bid-fixed-{len(out.paths)}.json"
        body.write_bytes(orjson.dumps({"bid_price": float(BID_PRICE), "offer_id": offer["id"]}))
        args = hey.command_line(
            url,
            concurrency=WORKERS,
            body_file=body,
            token=bidder.token,
            duration_seconds=seconds,
            rate_per_worker=rate / WORKERS,
        )
        before = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
        result = await asyncio.to_thread(hey.run, args, token=bidder.token, timeout=seconds + 300)
        ended = time.monotonic()
        settle = None
        if label == STACK:
            settle = await wait_applied(
                stack.pool, offer["id"], result.count(202), result.total_seconds, ended
            )
        elif label == PIPELINE:
            settle = await wait_counted(stack.pool, offer["id"], result.count(202), ended, result.responses)
        after = cpu.snapshot(stack.processes, await cpu.database_backends(stack.pool))
        out.paths.append(
            FixedRatePath(label, result, cpu.per_request(before, after, result.responses), settle)
        )
        print(f"  fixed rate {rate:g}/s, {label}: {result.rps:.0f} rps, {result.statuses}", flush=True)
    return out


def markdown(run: FixedRate | None) -> list[str]:
    lines = ["### CPU per bid at a fixed rate\n"]
    if run is None:
        return [*lines, "Not run.\n"]
    lines.append(
        f"`hey -z {run.seconds:g}s -c {WORKERS} -q {run.rps / WORKERS:g}` ({run.rps:g} requests/s, well below "
        "saturation) against each path in turn; µs of CPU per answered request by process, counted until "
        "every bid of the run is applied (`*` = machine-wide, other users' load included; `hey` = the "
        "harness's finished children, the load generator).\n"
    )
    kinds = {k for p in run.paths for k in p.cpu}
    rows = [k for k in ROW_ORDER if k in kinds] + sorted(kinds - set(ROW_ORDER))
    lines.append("| process | " + " | ".join(p.label for p in run.paths) + " |")
    lines.append("|---|" + "---|" * len(run.paths))
    lines.append("| achieved rps | " + " | ".join(f"{p.result.rps:.0f}" for p in run.paths) + " |")
    for kind in rows:
        cells = [f"{p.cpu[kind]:.0f}" if kind in p.cpu else "" for p in run.paths]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    # Machine-wide servers carry other users' load, which a low rate magnifies: left out of the sum.
    totals = [sum(v for k, v in p.cpu.items() if k != "hey" and not k.endswith("*")) for p in run.paths]
    lines.append("| **own processes** | " + " | ".join(f"**{t:.0f}**" for t in totals) + " |")
    lines.append("")
    return lines
