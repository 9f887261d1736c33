"""The one configuration reader: every process's settings from the environment, typed and checked.

A settings class is a frozen dataclass whose fields are declared with `setting("ENV_NAME", default)`.
`read(cls)` fills it from the environment: each value is parsed by the field's type, checked against
its bounds, and every bad value is reported in one `ConfigError` of the same shape
(`NAME: must be ..., got '...'`), so a process refuses to start with the whole list at once.
A field declared `secret=True` stays out of `repr` and out of error messages.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar, cast

from .secret_strength import weakness


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process cannot start."""


def setting(
    env: str,
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    clean: Callable[[str], str] | None = None,
    secret: bool = False,
) -> Any:
    """Declare a field read from the environment variable `env` (absent or empty: `default`).

    `clean` normalises the raw text before it is parsed (e.g. strip a trailing slash)."""
    return field(
        default=default,
        repr=not secret,
        metadata={
            "env": env,
            "minimum": minimum,
            "maximum": maximum,
            "choices": choices,
            "clean": clean,
            "secret": secret,
        },
    )


def env_name(f: Field[Any]) -> str | None:
    """The environment variable a field is read from, or None for a field that is not a setting."""
    name = f.metadata.get("env")
    return name if isinstance(name, str) else None


S = TypeVar("S")


def read(cls: type[S], env: Mapping[str, str] | None = None) -> S:
    """An instance of the settings class `cls` from `env` (default: the process environment)."""
    source = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    errors: list[str] = []
    for f in fields(cast(Any, cls)):
        name = env_name(f)
        if name is None:
            continue
        raw = source.get(name, "").strip()
        if raw == "":
            continue
        clean = f.metadata["clean"]
        try:
            values[f.name] = _check(_parse(hints[f.name], clean(raw) if clean else raw), f.metadata)
        except ValueError as exc:
            shown = "(hidden)" if f.metadata["secret"] else repr(raw)
            errors.append(f"{name}: {exc}, got {shown}")
    if errors:
        raise ConfigError("; ".join(errors))
    return cls(**values)


def _parse(kind: Any, raw: str) -> Any:
    if kind is str:
        return raw
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("must be true or false")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return value
    if typing.get_origin(kind) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return _parse(inner, raw)
    raise TypeError(f"no parser for settings of type {kind!r}")  # a programming error, not a bad value


def _check(value: Any, meta: Mapping[str, Any]) -> Any:
    minimum, maximum, choices = meta["minimum"], meta["maximum"], meta["choices"]
    if minimum is not None and value < minimum:
        raise ValueError(f"must be >= {minimum:g}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be <= {maximum:g}")
    if choices is not None and value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


def _url(raw: str) -> str:
    return raw.rstrip("/")


def _upper(raw: str) -> str:
    return raw.upper()


@dataclass(frozen=True)
class Settings:
    """What every service reads: where its dependencies are, its port, its limits."""

    # URLs may carry passwords: never in repr.
    database_url: str = setting("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/auction", secret=True)
    amqp_url: str = setting("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", secret=True)
    # Prefix of every exchange and queue name, so test runs never share the broker's names.
    amqp_prefix: str = setting("AMQP_PREFIX", "auction")
    jwt_secret: str = setting("JWT_SECRET", "", secret=True)
    jwt_ttl_seconds: int = setting("JWT_TTL_SECONDS", 3600, minimum=1)
    bcrypt_rounds: int = setting("BCRYPT_ROUNDS", 12, minimum=4, maximum=31)
    bid_shards: int = setting("BID_SHARDS", 8, minimum=1)
    host: str = setting("HOST", "127.0.0.1")
    gateway_port: int = setting("GATEWAY_PORT", 8000, minimum=0, maximum=65535)
    auth_port: int = setting("AUTH_PORT", 8001, minimum=0, maximum=65535)
    offers_port: int = setting("OFFERS_PORT", 8002, minimum=0, maximum=65535)
    bids_port: int = setting("BIDS_PORT", 8003, minimum=0, maximum=65535)
    auth_url: str = setting("AUTH_URL", "http://127.0.0.1:8001", clean=_url)
    offers_url: str = setting("OFFERS_URL", "http://127.0.0.1:8002", clean=_url)
    bids_url: str = setting("BIDS_URL", "http://127.0.0.1:8003", clean=_url)
    # How long a request may wait on Postgres, RabbitMQ or an upstream before it gets a 503.
    dependency_timeout: float = setting("DEPENDENCY_TIMEOUT", 5.0, minimum=0.1)
    login_attempts_per_minute: int = setting("LOGIN_ATTEMPTS_PER_MINUTE", 10, minimum=1)
    # Sign-ups hashing at once per auth process; more get 503, so logins keep their own threads.
    signup_hash_slots: int = setting("SIGNUP_HASH_SLOTS", 2, minimum=1)
    # Reverse proxies in front of the gateway that append to X-Forwarded-For; the client address is
    # the one the outermost of them saw. 0: the address the gateway itself sees.
    trusted_proxy_hops: int = setting("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10)
    cors_origins: tuple[str, ...] = setting("CORS_ORIGINS", ())
    ws_allowed_origins: tuple[str, ...] = setting("WS_ALLOWED_ORIGINS", ())
    # Frames a WebSocket client may be behind before it is closed (1008) instead of buffered.
    ws_client_queue: int = setting("WS_CLIENT_QUEUE", 256, minimum=1)
    # Bytes of frames a WebSocket client may be behind before it is closed (1008): a few large frames
    # (an `offers` page) weigh as much as many small ones.
    ws_client_queue_bytes: int = setting("WS_CLIENT_QUEUE_BYTES", 1024 * 1024, minimum=1024)
    # Seconds between pings on a WebSocket; a peer that does not pong within half of it is dropped.
    ws_heartbeat_seconds: float = setting("WS_HEARTBEAT_SECONDS", 20.0, minimum=0.1)
    # A socket that has not authenticated within this time is closed (4401).
    ws_auth_timeout_seconds: float = setting("WS_AUTH_TIMEOUT_SECONDS", 10.0, minimum=0.1)
    # Sockets one gateway replica holds at most, in total and per user; one more is refused (1008).
    ws_max_sockets: int = setting("WS_MAX_SOCKETS", 10_000, minimum=1)
    ws_max_sockets_per_user: int = setting("WS_MAX_SOCKETS_PER_USER", 32, minimum=1)
    # How long a process trusts its last answer to "does this token's user still exist?".
    known_user_ttl_seconds: float = setting("KNOWN_USER_TTL_SECONDS", 30.0, minimum=0.0, maximum=3600)
    log_level: str = setting(
        "LOG_LEVEL", "INFO", clean=_upper, choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )
    # `json`: one JSON object per line (service, level, request id, trace id); `console`: readable.
    log_format: str = setting("LOG_FORMAT", "json", clean=str.lower, choices=("json", "console"))
    # GET /metrics (Prometheus) on this port, never the public one; 0: not served, and HTTP requests
    # are not even counted (the few counters of the bid path still are, unread).
    metrics_port: int = setting("METRICS_PORT", 0, minimum=0, maximum=65535)
    # OTLP/HTTP collector base URL (e.g. http://jaeger:4318): spans are exported only when set.
    otlp_endpoint: str = setting("OTEL_EXPORTER_OTLP_ENDPOINT", "", clean=_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return read(cls, env)

    def require_jwt_secret(self) -> str:
        """The signing secret, or ConfigError if it is missing or guessable (a shipped placeholder)."""
        reason = weakness(self.jwt_secret) if self.jwt_secret else "it is not set"
        if reason is not None:
            raise ConfigError(
                f"JWT_SECRET is refused: {reason}. Set a random one: `openssl rand -hex 32` "
                "(make run and make env generate one)"
            )
        return self.jwt_secret
