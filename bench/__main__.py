"""`python -m bench` (`make bench`): start the stack, measure every section, stop it, write the report.

BENCH_QUICK=1 runs tiny sizes in seconds (CI runs it so the harness cannot rot); BENCH_ONLY picks
sections (intake, drain, fanout, memory, ends, observability); BENCH_OUT is the directory for the report, chart and results.pickle
(default: BENCHMARKS.md at the top of the checkout for a full run, bench/results/<mode>/ otherwise);
BENCH_PROFILE=DIR keeps py-spy profiles of the busy services there; BENCH_LOGS=DIR keeps the logs.
Exit status 1 means a correctness check failed (a bug), never that a target was missed.

Somewhat over the usual module size: it is the harness's one script, running the sections in
order with the baselines beside them; each section's measuring lives in its own module.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import psutil

from tests.support.processes import ROOT

from . import drain, ends, fanout, fixed_rate, intake, observability, report, soak
from .api import Account, PublicApi
from .memory import MemoryWatch
from .plan import SECTIONS, Plan
from .profile import Profiler
from .results import SPEED_LOOP, Results
from .stack import BenchStack, raise_open_files_limit

WATCHERS = 10
# Without an intake run to take half of, the soak runs at this rate.
DEFAULT_SOAK_RPS = 100.0


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return (sha or "unknown") + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _host_speed() -> float:
    """Seconds a plain Python loop of SPEED_LOOP additions takes here: a yardstick of the host's speed.
    Ratios to the same run's baselines hold across hosts far better than µs do, but not wholly (a
    slow host costs aiohttp's client more than the stack's leaner hops: bench/findings.md)."""
    started = time.perf_counter()
    total = 0
    for i in range(SPEED_LOOP):
        total += i
    return time.perf_counter() - started


def _paths(plan: Plan) -> tuple[Path, Path]:
    out = os.environ.get("BENCH_OUT")
    if out:
        return Path(out) / "BENCHMARKS.md", Path(out) / "latency-percentiles.png"
    if plan.quick or set(plan.sections) != set(SECTIONS):
        base = ROOT / "bench" / "results" / plan.mode
        return base / "BENCHMARKS.md", base / "latency-percentiles.png"
    return ROOT / "BENCHMARKS.md", ROOT / "bench" / "latency-percentiles.png"


async def measure(plan: Plan, results: Results) -> None:
    raise_open_files_limit()
    stack = BenchStack(Path(os.environ["BENCH_LOGS"]) if os.environ.get("BENCH_LOGS") else None)
    memory = MemoryWatch(interval=1.0)
    failed = True
    try:
        print(
            f"starting the stack (database {stack.settings.database_url.rsplit('/', 1)[1]}, "
            f"broker prefix {stack.settings.amqp_prefix}, logs in {stack.log_dir})",
            flush=True,
        )
        await stack.start(workers=2)
        memory.watch(stack.processes)
        memory.start()
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            api = PublicApi(session, stack.gateway_url)
            seller = await api.account("seller")
            bidder = await api.account("bidder")
            await run_sections(plan, results, stack, memory, api, seller, bidder)
        failed = not results.correct
    except Exception as exc:
        results.errors.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        memory.stop()
        results.peaks = dict(memory.peaks)
        if failed:
            print(f"service logs kept in {stack.log_dir}", flush=True)
        await stack.stop(failed=failed)


async def run_sections(
    plan: Plan,
    results: Results,
    stack: BenchStack,
    memory: MemoryWatch,
    api: PublicApi,
    seller: Account,
    bidder: Account,
) -> None:
    work_dir = stack.log_dir
    profiler = Profiler.from_env()
    if "intake" in plan.sections:
        print("1. bid intake (hey)", flush=True)
        _, app_port = stack.start_bare("bare-intake", "bench.baselines.bare_intake")
        _, proxy_port = stack.start_bare(
            "bare-proxy", "bench.baselines.bare_proxy", BARE_UPSTREAM=f"http://127.0.0.1:{app_port}"
        )
        pipeline = stack.start_bare_pipeline()
        one_hop_url = f"http://127.0.0.1:{proxy_port}/v1/bid"
        try:
            results.intake = await intake.measure(
                stack,
                api,
                seller,
                bidder,
                plan.intake_requests,
                plan.intake_concurrency,
                one_hop_url,
                pipeline,
                work_dir,
                profiler,
                plan.intake_rounds,
            )
            print(f"1b. CPU per bid at {plan.fixed_rate_rps:g} requests/s", flush=True)
            urls = {
                fixed_rate.STACK: stack.gateway_url + "/v1/bid",
                fixed_rate.ONE_HOP: one_hop_url,
                fixed_rate.PIPELINE: pipeline,
            }
            results.fixed_rate = await fixed_rate.measure(
                stack, api, seller, bidder, plan.fixed_rate_rps, plan.fixed_rate_seconds, urls, work_dir
            )
        finally:
            stack.stop_bare_pipeline()
    if "drain" in plan.sections:
        print("2. worker drain", flush=True)
        assert stack.pool is not None
        memory.read()
        stack.stop_workers()
        consumers = [
            ("1 bid-worker", lambda: stack.start_workers(1, "drain-one-")),
            ("2 bid-workers", lambda: stack.start_workers(2, "drain-two-")),
            (
                "bare consumer",
                lambda: [stack.start_consumer("bare-consumer", "bench.baselines.bare_consumer")],
            ),
        ]
        try:
            for seed, (label, start) in enumerate(consumers):
                results.drain.append(
                    await drain.measure_one(
                        label,
                        stack.settings,
                        stack.pool,
                        plan.drain_bids,
                        plan.drain_offers,
                        seed,
                        start,
                        memory,
                        profiler,
                        lambda: stack.processes,
                    )
                )
        finally:
            stack.stop_workers()
            memory.watch(stack.start_workers(2, "bid-worker"))
    if "fanout" in plan.sections:
        print("3. live fan-out", flush=True)
        watchers = [await api.account("watcher") for _ in range(WATCHERS)]
        tokens = [w.token for w in watchers]
        _, bare_port = stack.start_bare("bare-broadcast", "bench.baselines.bare_broadcast")
        sample = await api.create_offer(seller, "fan-out lot")
        payload = dict(sample)
        ws_url = stack.gateway_url.replace("http://", "ws://") + "/v1/stream"
        bare_base = f"http://127.0.0.1:{bare_port}"

        async def post_to_gateway() -> str:
            return (await api.create_offer(seller, "fan-out lot"))["id"]

        async def post_to_bare() -> str:
            async with api.session.post(bare_base + "/v1/offer", json=payload) as resp:
                resp.raise_for_status()
                return (await resp.json())["id"]

        gateway = next(p for p in stack.processes if p.name == "gateway")
        for clients in plan.fanout_clients:
            profiler.start(f"fanout-x{clients}-gateway", gateway.pid)
            hub = await fanout.measure_one(
                "gateway hub",
                ws_url,
                clients,
                tokens,
                post_to_gateway,
                plan.fanout_paced_offers,
                plan.fanout_burst_offers,
            )
            profiler.stop()
            bare = await fanout.measure_one(
                "bare broadcast",
                f"ws://127.0.0.1:{bare_port}/v1/stream",
                clients,
                tokens,
                post_to_bare,
                plan.fanout_paced_offers,
                plan.fanout_burst_offers,
            )
            results.fanout.append(fanout.FanoutPair(clients, hub, bare))
    if "ends" in plan.sections:
        print(f"5. ends: {plan.ending_offers} offers ending in the same second", flush=True)
        assert stack.pool is not None
        results.ends = await ends.measure(stack.pool, plan.ending_offers)
    if "memory" in plan.sections:
        print("4. memory under steady load", flush=True)
        best = max((r.stack.rps for r in results.intake), default=2 * DEFAULT_SOAK_RPS)
        results.soak = await soak.measure(
            stack,
            api,
            seller,
            bidder,
            best / 2,
            plan.soak_seconds,
            plan.soak_sample_seconds,
            memory,
            work_dir,
        )
    if "observability" in plan.sections:
        # Last: it restarts the stack in each configuration and leaves it in the last one.
        print("what watching costs (report section 5): metrics and tracing on and off", flush=True)
        memory.read()  # the peaks of the processes as they ran until now; the restarted ones are not watched
        started = time.monotonic()
        results.observability = await observability.measure(
            stack,
            api.session,
            seller,
            bidder,
            plan.observability_rounds,
            plan.observability_seconds,
            plan.observability_concurrency,
            plan.observability_warmup,
            work_dir,
        )
        print(f"  observability section: {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    plan = Plan.from_env()
    if {"intake", "memory", "observability"} & set(plan.sections) and shutil.which("hey") is None:
        print(
            "make bench needs hey (the original project's load tool): apt-get install -y hey", file=sys.stderr
        )
        return 2
    report_path, chart_path = _paths(plan)
    machine = (
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    results = Results(
        plan,
        datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        _commit(),
        machine,
        load_before=_load(),
        speed_before=_host_speed(),
    )
    print(f"make bench: {plan.mode} run of {', '.join(plan.sections)} -> {report_path}", flush=True)
    started = time.monotonic()
    asyncio.run(measure(plan, results))
    results.seconds = time.monotonic() - started
    results.load_after = _load()
    results.speed_after = _host_speed()
    report.write(results, report_path, chart_path)
    # Kept (git-ignored) so the report can be written again: python -m bench.report <this> <report> <chart>
    # With BENCH_OUT, beside that run's report, so runs kept apart do not overwrite each other's.
    kept_in = report_path.parent if os.environ.get("BENCH_OUT") else ROOT / "bench" / "results" / plan.mode
    saved = kept_in / "results.pickle"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(pickle.dumps(results))
    print(f"wrote {report_path} and {chart_path}", flush=True)
    for check in results.checks():
        if not check.ok:
            print(f"CORRECTNESS CHECK FAILED: {check.what}: {check.detail}", file=sys.stderr, flush=True)
    for target in results.targets():
        print(
            f"  {'met   ' if target.met else 'MISSED'} {target.what}: {target.figure} (wanted {target.wanted})"
        )
    return 0 if results.correct else 1


if __name__ == "__main__":
    sys.exit(main())
