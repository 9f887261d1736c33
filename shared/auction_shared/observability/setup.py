"""`observe(service, settings)`: logs, traces and the metrics port of one process, from its settings."""

from __future__ import annotations

from ..config import Settings
from .logs import setup_logging
from .metrics import serve_metrics, set_service
from .tracing import setup_tracing


def observe(service: str, settings: Settings) -> None:
    """Call once at the start of a process, before its app or worker is built."""
    setup_logging(service, settings.log_level, settings.log_format)
    setup_tracing(service, settings.otlp_endpoint or None)
    set_service(service)
    if settings.metrics_port:
        serve_metrics(settings.host, settings.metrics_port)
