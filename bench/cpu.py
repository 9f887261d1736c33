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


def _shared_servers() -> dict[str, float]:
    totals: dict[str, float] = {}
    for proc in psutil.process_iter(["name"]):
        label = SHARED_SERVERS.get(proc.info["name"] or "")
        if label is None:
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        totals[label] = totals.get(label, 0.0) + t.user + t.system
    return totals


def snapshot(procs: Iterable[ServiceProcess], backends: Iterable[int] = ()) -> dict[str, float]:
    """CPU seconds so far, summed per kind of process, plus the load generator and shared servers."""
    totals: dict[str, float] = {}
    for pid in backends:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        totals[OWN_DATABASE] = totals.get(OWN_DATABASE, 0.0) + t.user + t.system
    for proc in procs:
        if proc.proc.poll() is not None:
            continue
        try:
            t = psutil.Process(proc.pid).cpu_times()
        except psutil.Error:
            continue
        kind = kind_of(proc.name)
        totals[kind] = totals.get(kind, 0.0) + t.user + t.system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Finished children of the harness: during a measurement that is the load generator alone.
    totals["hey"] = children.ru_utime + children.ru_stime
    totals.update(_shared_servers())
    return totals


def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Microseconds of CPU per request, per kind, for kinds that did measurable work."""
    if requests <= 0:
        return {}
    out = {}
    for kind, end in after.items():
        micros = (end - before.get(kind, 0.0)) / requests * 1e6
        if micros >= 1:
            out[kind] = micros
    return out
