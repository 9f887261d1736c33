"""Settings read from the environment, one frozen dataclass for every service."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process cannot start."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _list(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/auction"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every exchange and queue name, so test runs never share the broker's names.
    amqp_prefix: str = "auction"
    jwt_secret: str = field(default="", repr=False)
    jwt_ttl_seconds: int = 3600
    bcrypt_rounds: int = 12
    bid_shards: int = 8
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    auth_port: int = 8001
    offers_port: int = 8002
    bids_port: int = 8003
    auth_url: str = "http://127.0.0.1:8001"
    offers_url: str = "http://127.0.0.1:8002"
    bids_url: str = "http://127.0.0.1:8003"
    # How long a request may wait on Postgres, RabbitMQ or an upstream before it gets a 503.
    dependency_timeout: float = 5.0
    login_attempts_per_minute: int = 10
    cors_origins: tuple[str, ...] = ()
    ws_allowed_origins: tuple[str, ...] = ()
    # Frames a WebSocket client may be behind before it is closed (1008) instead of buffered.
    ws_client_queue: int = 256
    # Seconds between pings on a WebSocket; a peer that does not pong within half of it is dropped.
    ws_heartbeat_seconds: float = 20.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        d = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or d.database_url,
            amqp_url=env.get("AMQP_URL") or d.amqp_url,
            amqp_prefix=env.get("AMQP_PREFIX") or d.amqp_prefix,
            jwt_secret=env.get("JWT_SECRET", ""),
            jwt_ttl_seconds=_int(env, "JWT_TTL_SECONDS", d.jwt_ttl_seconds, minimum=1),
            bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", d.bcrypt_rounds, minimum=4),
            bid_shards=_int(env, "BID_SHARDS", d.bid_shards, minimum=1),
            host=env.get("HOST") or d.host,
            gateway_port=_int(env, "GATEWAY_PORT", d.gateway_port),
            auth_port=_int(env, "AUTH_PORT", d.auth_port),
            offers_port=_int(env, "OFFERS_PORT", d.offers_port),
            bids_port=_int(env, "BIDS_PORT", d.bids_port),
            auth_url=(env.get("AUTH_URL") or d.auth_url).rstrip("/"),
            offers_url=(env.get("OFFERS_URL") or d.offers_url).rstrip("/"),
            bids_url=(env.get("BIDS_URL") or d.bids_url).rstrip("/"),
            dependency_timeout=float(env.get("DEPENDENCY_TIMEOUT") or d.dependency_timeout),
            login_attempts_per_minute=_int(
                env, "LOGIN_ATTEMPTS_PER_MINUTE", d.login_attempts_per_minute, minimum=1
            ),
            cors_origins=_list(env, "CORS_ORIGINS"),
            ws_allowed_origins=_list(env, "WS_ALLOWED_ORIGINS"),
            ws_client_queue=_int(env, "WS_CLIENT_QUEUE", d.ws_client_queue, minimum=1),
            ws_heartbeat_seconds=float(env.get("WS_HEARTBEAT_SECONDS") or d.ws_heartbeat_seconds),
            log_level=(env.get("LOG_LEVEL") or d.log_level).upper(),
        )

    def require_jwt_secret(self) -> str:
        if len(self.jwt_secret) < 32:
            raise ConfigError(
                "JWT_SECRET must be set to at least 32 characters "
                "(make run generates one; e.g. `export JWT_SECRET=$(openssl rand -hex 32)`)"
            )
        return self.jwt_secret
