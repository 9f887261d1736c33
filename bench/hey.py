"""Runs `hey` (the original project's load tool) and reads its summary into numbers."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
# hey keeps the status and latency of its first 1,000,000 results only ("We report for max 1M
# results" in its source): past that its status counts fall short of what it sent and received, and
# a check that compares them with the bids applied fails for no fault of the stack. A run that
# reaches it is refused; a long one is split into parts (`combined`).
MAX_REPORTED = 1_000_000


@dataclass
class HeyResult:
    command: str
    rps: float
    total_seconds: float
    # percentile -> seconds
    latency: dict[int, float]
    statuses: dict[int, int]
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return self.latency.get(50, float("nan"))

    @property
    def p99(self) -> float:
        return self.latency.get(99, float("nan"))

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    @property
    def failures(self) -> int:
        """Requests that did not get a 2xx: other statuses plus transport errors."""
        bad = sum(n for s, n in self.statuses.items() if not 200 <= s < 300)
        return bad + sum(self.errors.values())


class HeyMissing(RuntimeError):
    pass


class HeyTruncated(RuntimeError):
    """hey reached MAX_REPORTED: its status counts are missing the rest of the run."""


def combined(parts: list[HeyResult], command: str) -> HeyResult:
    """The runs of one load split into consecutive parts, as one result: statuses and errors added,
    the rate over their time together. Percentiles cannot be added: there are none (a lone part is
    returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    seconds = sum(p.total_seconds for p in parts)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for part in parts:
        statuses.update(part.statuses)
        errors.update(part.errors)
    answered = statuses.total() + errors.total()
    rps = answered / seconds if seconds else float("nan")
    return HeyResult(command, rps, seconds, {}, dict(statuses), dict(errors))


def parse(command: str, output: str) -> HeyResult:
    """Read hey's text summary; a figure hey did not print is NaN rather than a guess. A summary
    whose status counts reached hey's cap raises HeyTruncated."""

    def number(label: str) -> float:
        m = re.search(rf"^\s*{label}:\s+([0-9.]+)", output, re.MULTILINE)
        return float(m.group(1)) if m else float("nan")

    latency = {int(p): float(s) for p, s in re.findall(r"^\s*(\d+)% in ([0-9.]+) secs", output, re.MULTILINE)}
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    section = None
    for line in output.splitlines():
        if line and not line[0].isspace():
            # A heading at column 0 starts the next part of the summary.
            section = {"Status code distribution:": "status", "Error distribution:": "error"}.get(
                line.strip()
            )
            continue
        m = re.match(r"^\s*\[(\d+)\]\s+(.*)$", line)
        if m is None:
            continue
        if section == "status":
            statuses[int(m.group(1))] = int(m.group(2).split()[0])
        elif section == "error":
            # hey prints the full error text; its tail says what kind of failure it was.
            text = m.group(2).strip()
            kind = text.rsplit(": ", 1)[-1] if ": " in text else text
            errors[kind] = errors.get(kind, 0) + int(m.group(1))
    result = HeyResult(command, number("Requests/sec"), number("Total"), latency, statuses, errors)
    if result.responses >= MAX_REPORTED:
        raise HeyTruncated(
            f"hey reported {result.responses:,} statuses, as many as it keeps: the rest of the run is "
            f"missing from them (split the load into parts): {command}"
        )
    return result


def command_line(
    url: str,
    *,
    requests: int | None = None,
    concurrency: int,
    body_file: Path | None = None,
    token: str | None = None,
    duration_seconds: float | None = None,
    rate_per_worker: float | None = None,
) -> list[str]:
    args = ["hey"]
    if duration_seconds is not None:
        args += ["-z", f"{duration_seconds:g}s"]
    else:
        assert requests is not None
        args += ["-n", str(requests)]
    args += ["-c", str(concurrency)]
    if rate_per_worker is not None:
        args += ["-q", f"{rate_per_worker:g}"]
    args += ["-m", "POST"]
    if body_file is not None:
        args += ["-D", str(body_file), "-T", "application/json"]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    args.append(url)
    return args


def shown(args: list[str], token: str | None) -> str:
    """The command as a reader can paste it: the run's token becomes $TOKEN."""
    text = shlex.join(args)
    return text.replace(token, "$TOKEN") if token else text


def run(args: list[str], *, token: str | None = None, timeout: float) -> HeyResult:
    if shutil.which("hey") is None:
        raise HeyMissing("hey is not installed: apt-get install -y hey")
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse(shown(args, token), done.stdout)
    if result.total_seconds != result.total_seconds:  # NaN: hey printed no summary
        result.total_seconds = time.monotonic() - started
    return result
