"""Real service processes for end-to-end tests: start on a free port, wait until ready, kill."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one handed out before by this process: once the probing
    socket closes the kernel may offer the same port again, and a service then fails to bind it while
    the process that got it first answers in its place (a metrics server took a bench gateway's port,
    passed its health check and answered POST /v1/offer with 405)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class ServiceProcess:
    """`python -m <module>` with its output in a log file the test can read on failure."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path, name: str | None = None):
        self.module = module
        self.name = name or module
        self.log_path = log_dir / f"{self.name}.log"
        full_env = dict(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not print {text!r} in {timeout}s:\n{self.output()}")

    def wait_healthy(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{port}/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not healthy on :{port} in {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Stack:
    """auth, offers, bids and a gateway as real processes on free ports, plus any workers."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []
        self.ports: dict[str, int] = {}
        # Set `metrics = {}` before starting: each process then serves /metrics on its own free port.
        self.metrics: dict[str, int] | None = None

    def _observed(self, name: str, env: dict[str, str]) -> dict[str, str]:
        if self.metrics is None:
            return env
        self.metrics[name] = free_port()
        return dict(env, METRICS_PORT=str(self.metrics[name]))

    def start_services(self) -> None:
        for name in ("auth", "offers", "bids"):
            self.ports[name] = free_port()
        self.ports["gateway"] = free_port()
        env = dict(self.env)
        env.update(
            AUTH_PORT=str(self.ports["auth"]),
            OFFERS_PORT=str(self.ports["offers"]),
            BIDS_PORT=str(self.ports["bids"]),
            GATEWAY_PORT=str(self.ports["gateway"]),
            AUTH_URL=f"http://127.0.0.1:{self.ports['auth']}",
            OFFERS_URL=f"http://127.0.0.1:{self.ports['offers']}",
            BIDS_URL=f"http://127.0.0.1:{self.ports['bids']}",
        )
        self.env = env
        started = [
            ServiceProcess(n, self._observed(n, env), self.log_dir)
            for n in ("auth", "offers", "bids", "gateway")
        ]
        self.processes.extend(started)
        for proc in started:
            proc.wait_healthy(self.ports[proc.name])

    def start_gateway(self, name: str, **extra: str) -> tuple[ServiceProcess, int]:
        port = free_port()
        env = dict(self.env, GATEWAY_PORT=str(port), **extra)
        proc = ServiceProcess("gateway", self._observed(name, env), self.log_dir, name=name)
        self.processes.append(proc)
        proc.wait_healthy(port)
        return proc, port

    def start_worker(self, name: str, **extra: str) -> ServiceProcess:
        env = dict(self.env, WORKER_ID=name, **extra)
        proc = ServiceProcess("bid_worker", self._observed(name, env), self.log_dir, name=name)
        self.processes.append(proc)
        proc.wait_for_line("consuming")
        return proc

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
