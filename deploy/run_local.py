"""`make run`: check PostgreSQL and RabbitMQ, migrate, then start every service and supervise them.

One line per service says where it listens; Ctrl-C (or SIGTERM) stops them all. A process that dies
is started again after a pause that doubles with each crash (and says so); only one that exits with
a configuration error stops the whole stack, since starting it again cannot help.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from local_accounts import LocalAccounts, broker_accounts, database_accounts, remove_broker_users

from auction_shared.config import Settings, read, setting
from auction_shared.db import describe
from auction_shared.migrate import main as migrate_main
from auction_shared.retry import Backoff

ROOT = Path(__file__).resolve().parents[1]
# Metrics of the processes on consecutive ports from here (METRICS_PORT moves the first).
DEFAULT_METRICS_PORT = 9100
COLORS = ["36", "32", "33", "35", "34", "31", "96", "92"]


async def broker_ready(settings: Settings) -> str | None:
    """None if RabbitMQ answers and has the consistent-hash exchange, else what is wrong."""
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    except Exception as exc:
        return f"cannot reach RabbitMQ ({exc}).\nStart it with: rabbitmq-server -detached"
    try:
        channel = await connection.channel()
        name = f"{settings.amqp_prefix}.preflight.{os.getpid()}"
        try:
            await channel.declare_exchange(name, "x-consistent-hash", auto_delete=True)
            await channel.exchange_delete(name)
        except Exception:
            return (
                "RabbitMQ lacks the consistent-hash exchange.\n"
                "Enable it with: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
            )
    finally:
        await connection.close()
    return None


@dataclass(frozen=True)
class LocalRun:
    """How many of the replicable processes `make run` starts."""

    gateway_replicas: int = setting("GATEWAY_REPLICAS", 1, minimum=1)
    bid_workers: int = setting("BID_WORKERS", 2, minimum=0)


def plan(settings: Settings) -> list[tuple[str, str, dict[str, str]]]:
    """(name, module, extra environment) of every process to start."""
    local = read(LocalRun)
    procs: list[tuple[str, str, dict[str, str]]] = [
        ("auth", "auth", {}),
        ("offers", "offers", {}),
        ("bids", "bids", {}),
        ("gateway", "gateway", {}),
    ]
    for i in range(1, local.gateway_replicas):
        procs.append((f"gateway{i + 1}", "gateway", {"GATEWAY_PORT": str(settings.gateway_port + 10 * i)}))
    for i in range(local.bid_workers):
        procs.append((f"bid-worker{i + 1}", "bid_worker", {"WORKER_ID": f"bid-worker{i + 1}"}))
    return procs


async def pump(name: str, color: str, stream: asyncio.StreamReader) -> None:
    prefix = f"\x1b[{color}m{name:>12} |\x1b[0m " if sys.stdout.isatty() else f"{name:>12} | "
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()


# A crashed child is started again after this many seconds, doubling up to the cap; one that ran
# this long before it died starts again at the first delay.
RESTART_FIRST = 0.5
RESTART_CAP = 30.0
RESTART_STABLE = 60.0
# `python -m <service>` exits with 2 on a configuration error: starting it again cannot help.
CONFIG_ERROR = 2


class Child:
    """One supervised process: started, its output pumped, restarted with backoff when it dies."""

    def __init__(self, name: str, module: str, env: dict[str, str], color: str) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.color = color
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> asyncio.subprocess.Process:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return self.proc

    async def keep_running(self, stop: asyncio.Event) -> int:
        """Run until `stop`; return 0, or the exit code that made restarting pointless."""
        backoff = Backoff(RESTART_FIRST, RESTART_CAP)
        while True:
            proc = await self.start()
            if stop.is_set():  # stopped while it was starting: it missed the SIGTERM
                self.terminate()
            started = time.monotonic()
            assert proc.stdout is not None
            await pump(self.name, self.color, proc.stdout)
            code = await proc.wait()
            if stop.is_set():
                return 0
            if code == CONFIG_ERROR:
                print(f"{self.name} exited with a configuration error; not restarting it", flush=True)
                return code
            if time.monotonic() - started >= RESTART_STABLE:
                backoff.reset()
            print(f"{self.name} exited with code {code}; restarting it in {backoff.delay:.1f}s", flush=True)
            if await backoff.wait(stop):
                return 0

    def terminate(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)


def child_env(settings: Settings, index: int) -> dict[str, str]:
    """Readable logs, and each process's metrics on its own port (METRICS_PORT is the first)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("LOG_FORMAT", "console")
    env["METRICS_PORT"] = str(metrics_base(settings) + index)
    return env


def metrics_base(settings: Settings) -> int:
    return settings.metrics_port or DEFAULT_METRICS_PORT


async def supervise(settings: Settings, accounts: LocalAccounts) -> int:
    """Start every process and keep each running until Ctrl-C or SIGTERM; then stop them all."""
    children = [
        Child(
            name,
            module,
            {**accounts.environment(module, child_env(settings, i)), **extra},
            COLORS[i % len(COLORS)],
        )
        for i, (name, module, extra) in enumerate(plan(settings))
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    keepers = [asyncio.create_task(c.keep_running(stop)) for c in children]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *keepers], return_when=asyncio.FIRST_COMPLETED)
    # Only a configuration error ends a keeper early: the stack cannot run as configured.
    code = 0 if stopper in done else 1
    stop.set()
    print("\nstopping every service", flush=True)
    for child in children:
        child.terminate()
    try:
        await asyncio.wait_for(asyncio.gather(*keepers, return_exceptions=True), timeout=20)
    except asyncio.TimeoutError:
        for child in children:
            if child.proc is not None and child.proc.returncode is None:
                child.proc.kill()
        code = 1
    return code


def main() -> int:
    if not os.environ.get("JWT_SECRET"):
        os.environ["JWT_SECRET"] = secrets.token_hex(32)
        print("JWT_SECRET not set: generated one for this run (tokens end with it)")
    settings = Settings.from_env()
    print(f"PostgreSQL: {describe(settings.database_url)}")
    # The migrate step gives each service's role this run's password; only that service gets it.
    migrate_env, database_urls = database_accounts(settings)
    os.environ.update(migrate_env)
    try:
        if migrate_main_sync() != 0:
            return 1
    finally:
        for name in migrate_env:
            del os.environ[name]
    problem = asyncio.run(broker_ready(settings))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    amqp_urls, why_not = asyncio.run(broker_accounts(settings))
    print(why_not or "RabbitMQ: ok, a user per service (management UI, if enabled: http://127.0.0.1:15672)")
    print(
        f"API on http://{settings.host}:{settings.gateway_port} "
        f"(try /ping, /health, /index); Ctrl-C stops everything"
    )
    count = len(plan(settings))
    base = metrics_base(settings)
    print(
        f"Prometheus metrics: http://{settings.host}:{base}/metrics … :{base + count - 1} (one port per process)"
    )
    try:
        return asyncio.run(supervise(settings, LocalAccounts(database_urls, amqp_urls)))
    finally:
        if amqp_urls:
            asyncio.run(remove_broker_users(settings))


def migrate_main_sync() -> int:
    return asyncio.run(migrate_main())


if __name__ == "__main__":
    sys.exit(main())
