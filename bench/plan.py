"""How big each measurement is: the full run (minutes) or the quick one CI runs (seconds)."""

from __future__ import annotations

import os
from dataclasses import dataclass

SECTIONS = ("intake", "drain", "fanout", "memory", "ends", "observability")


@dataclass(frozen=True)
class Plan:
    quick: bool
    # 1. hey against POST /v1/bid: requests per run and the concurrencies to run it at.
    intake_requests: int
    intake_concurrency: tuple[int, ...]
    # 2. bids queued with the workers stopped, spread evenly over this many offers.
    drain_bids: int
    drain_offers: int
    # 3. WebSocket clients per measurement, offers posted one at a time (latency) and in a burst.
    fanout_clients: tuple[int, ...]
    fanout_paced_offers: int
    fanout_burst_offers: int
    # 4. seconds of steady load at half the measured intake rate, and how often RSS is read.
    soak_seconds: float
    soak_sample_seconds: float
    sections: tuple[str, ...] = SECTIONS
    # 1. how many times each concurrency runs (the targets take the median and show the spread).
    intake_rounds: int = 2
    # 1b. requests per second and seconds of the fixed-rate CPU measurement (below saturation).
    fixed_rate_rps: float = 200.0
    fixed_rate_seconds: float = 30.0
    # 5. offers ending in the same second (end lateness).
    ending_offers: int = 1000
    # Report section 5, what watching costs: rounds of the three configurations, seconds and
    # concurrency of each hey run, requests of its warm-up (about 17 s a run with the restart).
    # Six rounds put each configuration in each place twice. With three, one slow run in nine (the
    # same code's CPU per request moved 637–814 µs between rounds) decided the median.
    observability_rounds: int = 6
    observability_seconds: float = 12.0
    observability_concurrency: int = 100
    observability_warmup: int = 500

    @classmethod
    def full(cls) -> Plan:
        return cls(
            quick=False,
            intake_requests=100_000,
            intake_concurrency=(1000, 100),
            drain_bids=100_000,
            drain_offers=1000,
            fanout_clients=(1000, 5000),
            fanout_paced_offers=20,
            fanout_burst_offers=20,
            soak_seconds=600,
            soak_sample_seconds=5,
        )

    @classmethod
    def small(cls) -> Plan:
        return cls(
            quick=True,
            intake_requests=1000,
            intake_concurrency=(50, 10),
            drain_bids=1000,
            drain_offers=10,
            fanout_clients=(20, 50),
            fanout_paced_offers=2,
            fanout_burst_offers=2,
            soak_seconds=3,
            soak_sample_seconds=0.5,
            fixed_rate_rps=20.0,
            fixed_rate_seconds=2.0,
            ending_offers=50,
            observability_rounds=1,
            observability_seconds=1.0,
            observability_concurrency=10,
            observability_warmup=20,
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Plan:
        """BENCH_QUICK=1 picks the quick plan; BENCH_ONLY=intake,drain runs a subset of sections."""
        env = dict(os.environ if env is None else env)
        quick = env.get("BENCH_QUICK", "").strip() not in ("", "0", "false", "no")
        plan = cls.small() if quick else cls.full()
        only = tuple(s.strip() for s in env.get("BENCH_ONLY", "").split(",") if s.strip())
        unknown = [s for s in only if s not in SECTIONS]
        if unknown:
            raise SystemExit(f"BENCH_ONLY: unknown section(s) {unknown}; choose from {SECTIONS}")
        if only:
            plan = cls(**{**plan.__dict__, "sections": only})
        return plan

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"
