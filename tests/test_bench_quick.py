"""`make bench` in its quick mode, end to end, so the harness cannot rot. No speed is asserted here:
only that it runs, stops what it started, writes every section and that its correctness checks pass."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

from tests.support.environment import PG_BASE
from tests.support.processes import ROOT

pytestmark = pytest.mark.slow

SECTIONS = (
    "## Correctness",
    "## Targets",
    "## 1. Bid intake",
    "## 2. Bid processing",
    "### The worker alone",
    "## 3. Live fan-out",
    "## 4. Memory",
    "## 5. What watching costs",
    "## Chart",
    "## What the profiles found",
)
TIMEOUT = 600


def run_quick_bench(out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BENCH_QUICK="1", BENCH_OUT=str(out))
    env.pop("BENCH_ONLY", None)
    # Its own session: if it hangs, the harness and every service it started go down together.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the quick bench did not finish in {TIMEOUT}s:\n{output[-5000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, "")


@pytest.mark.servers
def test_the_quick_bench_measures_every_section_and_its_checks_pass(tmp_path: Path) -> None:
    done = run_quick_bench(tmp_path)
    assert done.returncode == 0, done.stdout[-5000:]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    missing = [s for s in SECTIONS if s not in report]
    assert not missing, f"sections missing: {missing}\n{report}"
    # Its own section: the findings quoted further down may tell of a check that failed once.
    correctness = report.split("## Correctness", 1)[1].split("\n## ", 1)[0]
    assert "correctness checks passed" in correctness and "FAILED" not in correctness, correctness
    assert "Not run." not in report, report
    for figure in (
        "gateway → bids",
        "bare proxy → bare app",
        "1 bid-worker",
        "2 bid-workers",
        "bare consumer",
        "gateway hub",
        "bare broadcast",
        "RSS after warm-up",
        "observability off",
        "tracing on",
    ):
        assert figure in report, f"{figure!r} missing from the report"
    chart = tmp_path / "latency-percentiles.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_nothing_left_behind(done.stdout)


def assert_nothing_left_behind(output: str) -> None:
    """The stack the harness started is gone: no process of its broker prefix, no database."""
    found = re.search(r"database (auction_bench_\w+), broker prefix (bench_\w+)", output)
    assert found, output[-2000:]
    database, prefix = found.groups()
    survivors = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("AMQP_PREFIX") == prefix:
                survivors.append(proc.pid)
        except psutil.Error:
            continue
    assert not survivors, f"processes of {prefix} still running: {survivors}"

    async def database_exists() -> bool:
        conn = await asyncpg.connect(f"{PG_BASE}/postgres")
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database))
        finally:
            await conn.close()

    assert not asyncio.run(database_exists()), f"database {database} was not dropped"
