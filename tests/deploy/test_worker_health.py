"""The bid-worker's optional /health (WORKER_HEALTH_PORT), which the compose and k8s probes call."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from auction_shared.config import ConfigError, Settings
from bid_worker.health import health_port
from tests.support.environment import env_of
from tests.support.processes import ServiceProcess, free_port


def test_health_port_is_off_unless_set() -> None:
    assert health_port({}) is None
    assert health_port({"WORKER_HEALTH_PORT": ""}) is None
    assert health_port({"WORKER_HEALTH_PORT": "8080"}) == 8080


@pytest.mark.parametrize("raw", ["http", "-1", "0", "70000", "80 80"])
def test_a_bad_health_port_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="WORKER_HEALTH_PORT"):
        health_port({"WORKER_HEALTH_PORT": raw})


def test_worker_answers_health_with_its_dependencies(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    worker = ServiceProcess(
        "bid_worker",
        env_of(settings, WORKER_ID="health-probe", WORKER_HEALTH_PORT=str(port)),
        tmp_path,
        name="health-probe",
    )
    try:
        worker.wait_healthy(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body == {
            "status": "ok",
            "dependencies": {"postgres": "up", "rabbitmq": "up", "shard_loops": "up"},
            "dead_letters": 0,
        }
        assert "consuming" in worker.output()
    finally:
        assert worker.terminate() == 0, worker.output()


def test_worker_refuses_a_bad_health_port(settings: Settings, tmp_path: Path) -> None:
    worker = ServiceProcess(
        "bid_worker", env_of(settings, WORKER_HEALTH_PORT="not-a-port"), tmp_path, name="bad-port"
    )
    try:
        assert worker.proc.wait(timeout=30) == 2
        assert "WORKER_HEALTH_PORT" in worker.output()
    finally:
        worker.terminate()
