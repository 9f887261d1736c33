"""`python -m bench.compare`: a short intake run of the working tree, for trying one change at a time.

The stack as `make bench` starts it, CPU per bid at a fixed rate, then hey at each concurrency against
the one-hop baseline and the stack, printed one line each. Swap a file, run it again, compare the same
run's ratios (and CPU per bid, which moves much less with the machine's load than requests per second).

COMPARE_REQUESTS (20000), COMPARE_CONCURRENCY (100,1000), COMPARE_RATE (200; 0 skips the fixed
rate), COMPARE_SECONDS (15), COMPARE_PIPELINE=1 adds the bare pipeline baseline, COMPARE_ROUNDS (1) runs each concurrency that often, COMPARE_PROFILE=DIR keeps py-spy
profiles of the stack's gateway, bids service and workers during each hey run (see profile.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from . import fixed_rate, intake
from .api import PublicApi
from .profile import Profiler
from .stack import BenchStack, raise_open_files_limit


def _rounded(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items()))


async def compare() -> None:
    requests = int(os.environ.get("COMPARE_REQUESTS", "20000"))
    concurrency = tuple(int(c) for c in os.environ.get("COMPARE_CONCURRENCY", "100,1000").split(","))
    rate = float(os.environ.get("COMPARE_RATE", "200"))
    seconds = float(os.environ.get("COMPARE_SECONDS", "15"))
    raise_open_files_limit()
    stack = BenchStack()
    try:
        await stack.start(workers=2)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            api = PublicApi(session, stack.gateway_url)
            seller, bidder = await api.account("seller"), await api.account("bidder")
            _, app_port = stack.start_bare("bare-intake", "bench.baselines.bare_intake")
            _, proxy_port = stack.start_bare(
                "bare-proxy", "bench.baselines.bare_proxy", BARE_UPSTREAM=f"http://127.0.0.1:{app_port}"
            )
            pipeline = stack.start_bare_pipeline() if os.environ.get("COMPARE_PIPELINE") == "1" else None
            if rate > 0:
                urls = {fixed_rate.STACK: stack.gateway_url + "/v1/bid"}
                fixed = await fixed_rate.measure(
                    stack, api, seller, bidder, rate, seconds, urls, stack.log_dir
                )
                for path in fixed.paths:
                    print(f"fixed {rate:g}/s {path.label}: {_rounded(path.cpu)}", flush=True)
            if requests > 0:
                one_hop = f"http://127.0.0.1:{proxy_port}/v1/bid"
                runs = await intake.measure(
                    stack,
                    api,
                    seller,
                    bidder,
                    requests,
                    concurrency,
                    one_hop,
                    pipeline,
                    stack.log_dir,
                    Profiler(Path(profile) if (profile := os.environ.get("COMPARE_PROFILE")) else None),
                    int(os.environ.get("COMPARE_ROUNDS", "1")),
                )
                for r in runs:
                    print(
                        f"-c {r.concurrency}: {r.stack.rps:.0f} rps vs one-hop {r.baseline.rps:.0f} = {r.rps_ratio:.2f}x, "
                        f"p99 {r.p99_ratio:.2f}x, answers {r.stack.statuses}; cpu/bid {_rounded(r.stack_cpu)}; "
                        f"one-hop cpu/request {_rounded(r.baseline_cpu)}"
                        + (
                            f"; pipeline {r.pipeline.rps:.0f} rps, cpu/bid {_rounded(r.pipeline_cpu)}"
                            if r.pipeline
                            else ""
                        ),
                        flush=True,
                    )
    finally:
        stack.stop_bare_pipeline()
        await stack.stop(failed=False)


if __name__ == "__main__":
    asyncio.run(compare())
