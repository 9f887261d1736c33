"""CPU seconds spent per process during a measurement: where a request's cost goes, load or not.

Requests per second depend on what else the two cores are doing; CPU time per request much less,
so it explains a ratio even when the machine is shared. RabbitMQ and PostgreSQL serve every user of
the machine, so their figures include other people's load.
"""
from __future__ import annotations

import resource
from collections.abc import Iterable

import psutil

from tests.support.processes import ServiceProcess

from .memory import kind_of

SHARED_SERVERS = {"beam.smp": "rabbitmq*", "postgres": "postgres*"}


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


def snapshot(procs: Iterable[ServiceProcess]) -> dict[str, float]:
    """CPU seconds so far, summed per kind of process, plus the load generator and shared servers."""
    totals: dict[str, float] = {}
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
        spent = end - before.get(kind, 0.0)
        if spent > 0.005:
            out[kind] = spent / requests * 1e6
    return out
