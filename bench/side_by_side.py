"""`python -m bench.side_by_side OLD NEW`: CPU per bid of two checkouts, measured at the same moment.

Measured one after the other, the same code's CPU per bid moved by ±10 % from run to run on the
shared two-core machine (its speed drifts), more than most changes to intake are worth. Here two
stacks, each from its own source tree (OLD and NEW are checkouts, e.g. `git worktree add`; their
`shared/` and `services/*/` go first on the services' PYTHONPATH), take the same fixed rate at the
same time, so a drift hits both alike. Prints µs of CPU per bid by process for each round.
SIDE_RATE (bids/s per stack, default 100), SIDE_SECONDS (30) and SIDE_ROUNDS (3) size it; run it
under `flock /work/bench.lock` like any bench.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from . import fixed_rate
from .api import PublicApi
from .stack import BenchStack, raise_open_files_limit

PACKAGES = (
    "shared",
    "services/bids",
    "services/gateway",
    "services/auth",
    "services/offers",
    "services/bid-worker",
)
SHOWN = ("gateway", "bids", "bid-worker", "offers", "postgres (own db)", "rabbitmq*")


async def measure(trees: list[Path], rate: float, seconds: float, rounds: int) -> None:
    raise_open_files_limit()
    stacks = []
    for tree in trees:
        stack = BenchStack()
        stack.stack.env["PYTHONPATH"] = ":".join(str(tree.resolve() / p) for p in PACKAGES)
        stacks.append(stack)
    try:
        await asyncio.gather(*(stack.start(workers=2) for stack in stacks))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            parties = []
            for stack in stacks:
                api = PublicApi(session, stack.gateway_url)
                parties.append((stack, api, await api.account("seller"), await api.account("bidder")))

            async def run(seconds: float) -> list[fixed_rate.FixedRate]:
                return await asyncio.gather(
                    *(
                        fixed_rate.measure(
                            stack,
                            api,
                            seller,
                            bidder,
                            rate,
                            seconds,
                            {fixed_rate.STACK: stack.gateway_url + "/v1/bid"},
                            stack.log_dir,
                        )
                        for stack, api, seller, bidder in parties
                    )
                )

            await run(3)  # warm-up: connections, caches
            for number in range(rounds):
                for tree, result in zip(trees, await run(seconds), strict=True):
                    path = result.paths[0]
                    cpu = {k: round(path.cpu[k]) for k in SHOWN if k in path.cpu}
                    print(f"round {number + 1} {tree}: {cpu} {path.result.statuses}", flush=True)
                    if path.settle is not None and path.settle.problems:
                        print(f"  CORRECTNESS: {path.settle.problems}", flush=True)
    finally:
        for stack in stacks:
            await stack.stop(failed=False)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    trees = [Path(arg) for arg in sys.argv[1:]]
    rate = float(os.environ.get("SIDE_RATE", 100))
    seconds = float(os.environ.get("SIDE_SECONDS", 30))
    rounds = int(os.environ.get("SIDE_ROUNDS", 3))
    asyncio.run(measure(trees, rate, seconds, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
