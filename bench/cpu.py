"""CPU seconds spent per process during a measurement: where a request's cost goes, load or not.

Requests per second depend on what else the two cores are doing; CPU time per request much less,
so it explains a ratio even when the machine is shared. RabbitMQ and PostgreSQL serve every user of
the machine, so their figures include other people's load; the PostgreSQL backends connected to the
run's own database are also counted apart.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable

import asyncpg
import psutil

from tests.support.processes import ServiceProcess

from .memory import kind_of

SHARED_SERVERS = {"beam.smp": "rabbitmq*", "postgres": "postgres*"}
OWN_DATABASE = "postgres (own db)"


async def database_backends(pool: asyncpg.Pool) -> list[int]:
    """Process ids of the PostgreSQL backends serving the run's own database right now."""
    rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return [r["pid"] for r in rows]


Snapshot = dict[tuple[str, int], float]


def _add(totals: Snapshot, kind: str, pid: int) -> None:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return
    totals[(kind, pid)] = t.user + t.system


def snapshot(procs: Iterable[ServiceProcess], backends: Iterable[int] = ()) -> Snapshot:
    """CPU seconds so far of every process, by (kind, pid): services, load generator, shared servers."""
    totals: Snapshot = {}
    for proc in procs:
        if proc.proc.poll() is None:
            _add(totals, kind_of(proc.name), proc.pid)
    for pid in backends:
        _add(totals, OWN_DATABASE, pid)
    for proc in psutil.process_iter(["name"]):
        label = SHARED_SERVERS.get(proc.info["name"] or "")
        if label is not None:
            _add(totals, label, proc.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Finished children of the harness: during a measurement that is the load generator alone.
    totals[("hey", 0)] = children.ru_utime + children.ru_stime
    return totals


def per_request(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float]:
    """Microseconds of CPU per request, per kind, for kinds that did measurable work.

    A process that started meanwhile counts from zero; one that exited meanwhile is left out (its
    last seconds are unknown), so a figure is a lower bound, never made negative by it.
    """
    if requests <= 0:
        return {}
    spent: dict[str, float] = {}
    for (kind, pid), end in after.items():
        spent[kind] = spent.get(kind, 0.0) + end - before.get((kind, pid), 0.0)
    return {kind: s / requests * 1e6 for kind, s in spent.items() if s / requests * 1e6 >= 1}
