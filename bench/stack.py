"""The stack under test, started by the harness on its own database and broker prefix, then removed.

It reuses the test suite's throwaway world (tests/support) so a benchmark never touches the
`auction` database or the broker names `make run` uses.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import asyncpg

from auction_shared.config import Settings
from tests.support.cleanup import delete_broker_names
from tests.support.environment import env_of, new_settings, prepare, tear_down
from tests.support.processes import ServiceProcess, Stack, free_port

# Tokens must outlive the whole run (the soak alone is ten minutes).
TOKEN_TTL_SECONDS = 6 * 3600
SERVICES = ("auth", "offers", "bids", "gateway")


def raise_open_files_limit() -> int:
    """Thousands of sockets (hey -c 1000, 5,000 WebSocket clients) need more than the usual 1,024.

    Child processes inherit the limit, so every service and client started after this gets it too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class BenchStack:
    """auth, offers, bids, gateway and bid-workers as real processes, plus the bare baselines."""

    def __init__(self, log_dir: Path | None = None) -> None:
        run = uuid.uuid4().hex[:10]
        base = new_settings()
        db = base.database_url.rsplit("/", 1)[0] + f"/auction_bench_{run}"
        # Eight shards, as `make run` has: the worker's parallelism depends on it.
        self.settings: Settings = replace(
            base, database_url=db, amqp_prefix=f"bench_{run}", bid_shards=8, jwt_ttl_seconds=TOKEN_TTL_SECONDS
        )
        self._own_logs = log_dir is None
        self.log_dir = Path(tempfile.mkdtemp(prefix="auction-bench-")) if log_dir is None else log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stack = self._new_stack(metrics=True)
        self.workers: list[ServiceProcess] = []
        self.pipeline: list[ServiceProcess] = []
        # The bare pipeline's own exchanges and queues, beside the stack's.
        self.pipeline_settings = replace(self.settings, amqp_prefix=f"{self.settings.amqp_prefix}_bare")
        self.pool: asyncpg.Pool | None = None
        self._prepared = False

    def _new_stack(self, *, metrics: bool, **env: str) -> Stack:
        """As shipped (make run, compose, Kubernetes), every process serves its metrics on a port of
        its own; `metrics=False` leaves METRICS_PORT unset, which also turns the HTTP metrics off."""
        stack = Stack(env_of(self.settings, JWT_TTL_SECONDS=str(TOKEN_TTL_SECONDS), **env), self.log_dir)
        stack.metrics = {} if metrics else None
        return stack

    def restart(self, *, metrics: bool, **env: str) -> None:
        """Stop the services and workers and start them again (two workers) with `env` added and the
        metrics on or off: same database, broker names, secret and accounts; new ports, so
        `gateway_url` changes. The baselines that run go on running."""
        self.stop_workers()
        for proc in self.stack.processes:
            if proc.module in SERVICES:
                proc.terminate()
        old = self.stack
        self.stack = self._new_stack(metrics=metrics, **env)
        self.stack.processes = [p for p in old.processes if p.proc.poll() is None]
        self.stack.start_services()
        self.start_workers(2, "bid-worker")

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Process name -> its METRICS_PORT; empty when the metrics are off."""
        return dict(self.stack.metrics or {})

    @property
    def gateway_url(self) -> str:
        return self.stack.gateway_url

    @property
    def processes(self) -> list[ServiceProcess]:
        return list(self.stack.processes)

    async def start(self, workers: int = 2) -> None:
        await prepare(self.settings)
        self._prepared = True
        self.stack.start_services()
        self.start_workers(workers, "bid-worker")
        self.pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=4)

    def start_workers(self, count: int, prefix: str) -> list[ServiceProcess]:
        """Start `count` workers at the same moment, so no one of them takes every shard first."""
        started = []
        for i in range(count):
            name = f"{prefix}{i + 1}-{uuid.uuid4().hex[:4]}"
            env = dict(self.stack.env, WORKER_ID=f"{prefix}{i + 1}")
            if self.stack.metrics is not None:
                env["METRICS_PORT"] = str(self.stack.metrics.setdefault(name, free_port()))
            started.append(ServiceProcess("bid_worker", env, self.log_dir, name=name))
        self.stack.processes.extend(started)
        for proc in started:
            proc.wait_for_line("consuming", timeout=300)
        self.workers.extend(started)
        return started

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        self.workers.clear()

    def start_bare(self, name: str, module: str, **env: str) -> tuple[ServiceProcess, int]:
        port = free_port()
        proc = ServiceProcess(
            module, dict(self.stack.env, BARE_PORT=str(port), **env), self.log_dir, name=name
        )
        self.stack.processes.append(proc)
        proc.wait_healthy(port)
        return proc, port

    def start_bare_pipeline(self) -> str:
        """The bare pipeline baseline (proxy -> publishing handler -> batch consumer): its bid URL."""
        prefix = self.pipeline_settings.amqp_prefix
        handler, handler_port = self.start_bare(
            "bare-pipeline", "bench.baselines.bare_pipeline", AMQP_PREFIX=prefix
        )
        consumer = self.start_consumer(
            "bare-pipeline-consumer", "bench.baselines.bare_consumer", AMQP_PREFIX=prefix
        )
        proxy, proxy_port = self.start_bare(
            "bare-pipeline-proxy",
            "bench.baselines.bare_proxy",
            BARE_UPSTREAM=f"http://127.0.0.1:{handler_port}",
        )
        self.pipeline = [handler, consumer, proxy]
        return f"http://127.0.0.1:{proxy_port}/v1/bid"

    def stop_bare_pipeline(self) -> None:
        for proc in self.pipeline:
            proc.terminate()
        self.pipeline.clear()

    def start_consumer(self, name: str, module: str, **env: str) -> ServiceProcess:
        """A baseline that consumes the bid shards: ready once it prints "consuming"."""
        proc = ServiceProcess(module, dict(self.stack.env, **env), self.log_dir, name=name)
        self.stack.processes.append(proc)
        proc.wait_for_line("consuming", timeout=300)
        return proc

    async def stop(self, *, failed: bool) -> None:
        if self.pool is not None:
            await self.pool.close()
        self.stack.stop()
        if self._prepared:
            await tear_down(self.settings)
            await delete_broker_names(self.pipeline_settings)
        if self._own_logs and not failed:
            shutil.rmtree(self.log_dir, ignore_errors=True)
