"""The one configuration reader: typed values, every bad one reported at once, secrets kept out."""

from __future__ import annotations

import pytest

from auction_shared.config import ConfigError, Settings
from bid_worker.settings import WorkerSettings


def test_values_are_parsed_by_their_type() -> None:
    s = Settings.from_env(
        {
            "BID_SHARDS": "4",
            "DEPENDENCY_TIMEOUT": "2.5",
            "CORS_ORIGINS": " https://a.example , https://b.example ",
            "AUTH_URL": "http://auth:8001/",
            "LOG_LEVEL": "debug",
        }
    )
    assert s.bid_shards == 4 and s.dependency_timeout == 2.5
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert s.auth_url == "http://auth:8001" and s.log_level == "DEBUG"


def test_absent_or_empty_values_take_the_default() -> None:
    assert Settings.from_env({"BID_SHARDS": ""}) == Settings.from_env({}) == Settings()
    assert WorkerSettings.from_env({}).health_port is None


def test_every_bad_value_is_reported_in_one_error_of_one_shape() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"BID_SHARDS": "eight", "GATEWAY_PORT": "70000", "LOG_LEVEL": "loud", "DEPENDENCY_TIMEOUT": "nan"}
        )
    message = str(caught.value)
    assert "BID_SHARDS: must be an integer, got 'eight'" in message
    assert "GATEWAY_PORT: must be <= 65535, got '70000'" in message
    assert "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'" in message
    assert "DEPENDENCY_TIMEOUT: must be a finite number, got 'nan'" in message


def test_secrets_never_show_in_repr_or_errors() -> None:
    secret = "s3cr3t-" * 8
    s = Settings.from_env({"JWT_SECRET": secret, "AMQP_URL": "amqp://svc:hunter2@rabbit:5672/"})
    assert secret not in repr(s) and "hunter2" not in repr(s)
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({"WORKER_PREFETCH": "0", "WORKER_HEALTH_PORT": "http"})
    assert "WORKER_PREFETCH: must be >= 1, got '0'" in str(caught.value)
    assert "WORKER_HEALTH_PORT: must be an integer, got 'http'" in str(caught.value)


def test_a_worker_batch_fills_up_to_what_the_broker_lets_a_shard_hold() -> None:
    assert WorkerSettings.from_env({}).full_batch == 1000
    assert WorkerSettings.from_env({"WORKER_PREFETCH": "100"}).full_batch == 100
    assert WorkerSettings.from_env({"WORKER_MAX_BATCH": "50"}).full_batch == 50
