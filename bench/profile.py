"""BENCH_PROFILE=DIR: py-spy samples the busy services during a measurement, for the findings.

Each profile is a folded-stack text file (`py-spy record -f raw`) plus a short summary of where the
time went, by function, in DIR. py-spy is in requirements-dev.txt; it needs ptrace (root here). As
root it runs at real-time priority, so its samples follow the services' real CPU on a busy machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 200


class Profiler:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    @classmethod
    def from_env(cls) -> Profiler:
        raw = os.environ.get("BENCH_PROFILE")
        return cls(Path(raw) if raw else None)

    def start(self, label: str, pid: int) -> None:
        if self.directory is None:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{label}.txt"
        command = [spy, "record", "-p", str(pid), "-r", str(RATE), "-f", "raw", "-o", str(out)]
        proc = subprocess.Popen(
            [*_realtime(), *command, "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._running.append((label, proc, out))

    def stop(self) -> None:
        for _label, proc, out in self._running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                out.with_suffix(".summary.txt").write_text(summarise(out))
        self._running.clear()


def _realtime() -> list[str]:
    """`chrt -f 50` where it can be had (root, chrt installed): on a saturated machine a sampler that
    waits for a CPU of its own samples late, and counts the services' waits for a CPU as their work."""
    chrt = shutil.which("chrt")
    return [chrt, "-f", "50"] if chrt and os.geteuid() == 0 else []


def summarise(folded: Path, top: int = 25) -> str:
    """Self and inclusive share of the samples, by function, from py-spy's folded stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
