"""End lateness: many offers ending in the same second; how long after `ends_at` each one is closed.

The offers go straight into the table (as the offers service would write them), with no bids, all
ending in one whole second a few seconds ahead. The running workers' closers find them due after the
grace (END_GRACE_SECONDS) and close each through its shard; the lateness of an offer is its
`ended_at` (the database clock of the closing transaction) minus its `ends_at`. docs/API.md wants every
end within 5 s.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import asyncpg

# How far ahead the common end is set: longer than inserting the offers takes.
LEAD_SECONDS = 5
DEADLINE_SECONDS = 120
TARGET_SECONDS = 5.0


@dataclass
class EndsRun:
    offers: int
    lateness: list[float] = field(default_factory=list)  # seconds after ends_at, one per ended offer
    problems: list[str] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        if not self.lateness:
            return float("nan")
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.lateness) if self.lateness else float("nan")

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def ok(self) -> bool:
        return not self.problems


async def measure(pool: asyncpg.Pool, count: int) -> EndsRun:
    run = EndsRun(count)
    ids = [uuid.uuid4() for _ in range(count)]
    now = datetime.now(timezone.utc)
    ends_at = now.replace(microsecond=0) + timedelta(seconds=LEAD_SECONDS + 1)
    go_live = now - timedelta(minutes=1)
    await pool.execute(
        "INSERT INTO offers (id, title, start_price, bid_price, go_live, lifetime, ends_at, hard_ends_at,"
        " created_by_id, created_by)"
        " SELECT id, 'ending lot', 1.00, 1.00, $2, $3, $4, $4, $5, 'bench-seller'"
        " FROM unnest($1::uuid[]) AS t(id)",
        ids,
        go_live,
        int((ends_at - go_live).total_seconds()),
        ends_at,
        uuid.uuid4(),
    )
    deadline = asyncio.get_running_loop().time() + LEAD_SECONDS + DEADLINE_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        live = await pool.fetchval(
            "SELECT count(*) FROM offers WHERE id = ANY($1::uuid[]) AND status = 'live'", ids
        )
        if not live:
            break
        await asyncio.sleep(0.2)
    rows = await pool.fetch(
        "SELECT status, end_reason, extract(epoch FROM ended_at - ends_at)::float8 AS late"
        " FROM offers WHERE id = ANY($1::uuid[])",
        ids,
    )
    still = [r for r in rows if r["status"] == "live"]
    if still:
        run.problems.append(f"{len(still)} of {count} offers still live {DEADLINE_SECONDS}s after their end")
    wrong = [r for r in rows if r["status"] == "ended" and r["end_reason"] != "no_bids"]
    if wrong or any(r["status"] == "sold" for r in rows):
        run.problems.append("an offer without bids did not end as no_bids")
    run.lateness = [r["late"] for r in rows if r["late"] is not None]
    early = [x for x in run.lateness if x < 0]
    if early:
        run.problems.append(f"{len(early)} offers closed before their ends_at")
    print(
        f"  ends of {count} offers in one second: p50 {run.p50:.2f}s, p99 {run.p99:.2f}s late;"
        f" ok={run.ok} {run.problems}",
        flush=True,
    )
    return run
