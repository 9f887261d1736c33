"""`make run`: check PostgreSQL and RabbitMQ, migrate, then start every service and supervise them.

One line per service says where it listens; Ctrl-C (or SIGTERM) stops them all. If one dies, the
others are stopped too, so a half-running stack never looks healthy.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from auction_shared.config import Settings, read, setting
from auction_shared.db import describe
from auction_shared.migrate import main as migrate_main

ROOT = Path(__file__).resolve().parents[1]
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


async def supervise(settings: Settings) -> int:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    pumps = []
    for i, (name, module, extra) in enumerate(plan(settings)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            env={**env, **extra},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        children.append((name, proc))
        pumps.append(asyncio.create_task(pump(name, COLORS[i % len(COLORS)], proc.stdout)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = {asyncio.create_task(p.wait()): name for name, p in children}
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if stopper not in done:
        died = [waits[t] for t in done]
        print(f"\n{', '.join(died)} exited; stopping the others", flush=True)
        code = 1
    else:
        print("\nstopping every service", flush=True)
    for _, proc in children:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*(p.wait() for _, p in children)), timeout=20)
    await asyncio.gather(*pumps, return_exceptions=True)
    return code


def main() -> int:
    if not os.environ.get("JWT_SECRET"):
        os.environ["JWT_SECRET"] = secrets.token_hex(32)
        print("JWT_SECRET not set: generated one for this run (tokens end with it)")
    settings = Settings.from_env()
    print(f"PostgreSQL: {describe(settings.database_url)}")
    if migrate_main_sync() != 0:
        return 1
    problem = asyncio.run(broker_ready(settings))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print("RabbitMQ: ok (management UI, if enabled: http://127.0.0.1:15672, guest/guest)")
    print(
        f"API on http://{settings.host}:{settings.gateway_port} "
        f"(try /ping, /health, /index); Ctrl-C stops everything"
    )
    return asyncio.run(supervise(settings))


def migrate_main_sync() -> int:
    return asyncio.run(migrate_main())


if __name__ == "__main__":
    sys.exit(main())
