"""Resident memory of every service process: peaks over the whole run, and growth under steady load."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil

from tests.support.processes import ServiceProcess

MB = 1024 * 1024


def kind_of(name: str) -> str:
    """auth, offers, bids, gateway, bid-worker (every worker process counts as one) or a bare-* baseline."""
    if name.startswith(("bid-worker", "drain-")):
        return "bid-worker"
    return name if name.startswith("bare-") else name.split("-")[0]


def peak_rss(pid: int) -> int | None:
    """VmHWM: the kernel's own high-water mark of the process's resident set, in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Sample:
    at: float
    rss: dict[str, int]


@dataclass
class MemoryWatch:
    """Reads RSS and VmHWM of the watched processes every `interval` seconds in a thread."""

    interval: float = 1.0
    peaks: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    _procs: dict[str, ServiceProcess] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, procs: list[ServiceProcess]) -> None:
        with self._lock:
            for proc in procs:
                if kind_of(proc.name) in ("auth", "offers", "bids", "gateway", "bid-worker"):
                    self._procs[proc.name] = proc

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.read()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def read(self) -> Sample:
        """One sample now; also folds every VmHWM into the per-kind peaks."""
        rss: dict[str, int] = {}
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.proc.poll() is not None:
                continue
            try:
                rss[proc.name] = psutil.Process(proc.pid).memory_info().rss
            except psutil.Error:
                continue
            hwm = peak_rss(proc.pid)
            if hwm is not None:
                kind = kind_of(proc.name)
                self.peaks[kind] = max(self.peaks.get(kind, 0), hwm)
        sample = Sample(time.monotonic(), rss)
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.read()
