"""`make run`'s supervisor keeps the stack running: a killed bid-worker is back within seconds and
bids keep being applied; SIGTERM still stops every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from auction_shared.config import Settings
from tests.support.api import Api
from tests.support.environment import env_of
from tests.support.processes import ROOT, free_port
from tests.support.waiting import wait_until

SERVICES = ("auth", "offers", "bids", "gateway")


def free_run(count: int) -> int:
    """The first of `count` consecutive free ports (the supervisor gives one per process)."""
    for _ in range(50):
        base = free_port()
        try:
            sockets = []
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports")


class Supervisor:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        self.env = env_of(
            settings,
            BID_WORKERS="1",
            LOG_FORMAT="json",
            METRICS_PORT=str(free_run(len(SERVICES) + 1)),
            **{f"{n.upper()}_PORT": str(p) for n, p in self.ports.items()},
            **{f"{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in self.ports.items() if n != "gateway"},
        )
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "run_local.py")],
            env=self.env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def workers(self) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.proc.pid).children():
            try:
                if child.is_running() and "bid_worker" in child.cmdline():
                    found.append(child)
            except (psutil.ZombieProcess, psutil.NoSuchProcess):  # killed, not yet reaped
                continue
        return found

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    child.kill()
                self.proc.kill()
        self._out.close()


@pytest.fixture
def supervisor(settings: Settings, tmp_path: Path) -> Iterator[Supervisor]:
    s = Supervisor(settings, tmp_path / "make-run.log")
    try:
        yield s
    finally:
        s.stop()


async def test_a_killed_worker_is_restarted_and_bids_keep_being_applied(supervisor: Supervisor) -> None:
    gateway = f"http://127.0.0.1:{supervisor.ports['gateway']}"
    async with aiohttp.ClientSession() as session:
        api = Api(session, gateway)

        async def up() -> bool:
            try:
                return (await api.call("GET", "/health"))[0] == 200 and len(supervisor.workers()) == 1
            except aiohttp.ClientError:
                return False

        await wait_until(up, 120, f"make run's stack to answer:\n{supervisor.output()}")
        await wait_until(lambda: "consuming" in supervisor.output(), 60, "the bid-worker to consume")
        seller, bidder = await api.accounts(2)
        offer = await api.create_offer(seller)

        async def applied(price: int) -> bool:
            status, body = await api.get(bidder, f"/v1/offer/{offer['id']}")
            return status == 200 and body["bid_price"] == price

        assert (await api.bid(bidder, offer["id"], 11))[0] == 202
        await wait_until(lambda: applied(11), 30, "the first bid to be applied")

        (victim,) = supervisor.workers()
        os.kill(victim.pid, signal.SIGKILL)
        await wait_until(
            lambda: [w for w in supervisor.workers() if w.pid != victim.pid],
            15,
            f"a new bid-worker process:\n{supervisor.output()}",
        )
        assert "bid-worker1 exited with code -9; restarting it in" in supervisor.output()
        assert (await api.bid(bidder, offer["id"], 12))[0] == 202
        await wait_until(lambda: applied(12), 30, f"a bid applied after the restart:\n{supervisor.output()}")

    children = psutil.Process(supervisor.proc.pid).children(recursive=True)
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.proc.wait(30) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after SIGTERM: {alive}"
