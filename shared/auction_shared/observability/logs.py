"""JSON log lines (structlog) with service, level, request id and trace id; console form for people.

Every logger of the process, our `logging.getLogger(...)` ones and the libraries', goes through one
handler, so every line of a process has the same shape.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from . import request_id

EventDict = MutableMapping[str, Any]


def _ids(_: object, __: str, event: EventDict) -> EventDict:
    event["request_id"] = request_id.current()
    context = trace.get_current_span().get_span_context()
    event["trace_id"] = format(context.trace_id, "032x") if context.is_valid else None
    return event


def _service(name: str) -> structlog.types.Processor:
    def add(_: object, __: str, event: EventDict) -> EventDict:
        event["service"] = name
        return event

    return add


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def setup_logging(service: str, level: str, fmt: str = "json") -> None:
    """Route every log record of the process to stderr as JSON (or `console`: readable, coloured)."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _service(service),
        _ids,
    ]
    renderer: structlog.types.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # aiormq logs every reconnect attempt at length; our own lines say what matters.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
