"""OpenTelemetry: the tracer provider, the maintained instrumentations, and context in message headers.

Tracing is on only when an OTLP endpoint is configured (or a test hands in an exporter); then every
span is recorded and exported, and the trace context travels in HTTP and AMQP headers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace

from . import request_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_instrumented = False
# True once a tracer provider exports spans: until then the helpers below skip the propagation work
# they would do for nothing (a batch of 1,000 messages paid for 1,000 unused links).
_on = False
# Broker header: when a message was published, in whole milliseconds since the epoch (an integer: AMQP
# carries a Python float as 32 bits, ±64 s off at today's epoch), so a consumer knows how long it waited.
PUBLISHED_AT = "x-published-at"


def published_at_now() -> int:
    """The value of PUBLISHED_AT for a message published now."""
    return time.time_ns() // 1_000_000


def seconds_since_published(headers: Mapping[str, object]) -> float | None:
    """How long ago the message with these headers was published (None if it does not say)."""
    published = headers.get(PUBLISHED_AT)
    if isinstance(published, bool) or not isinstance(published, int):
        return None
    return max(0.0, time.time() - published / 1000)


def setup_tracing(service: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None) -> None:
    """With an OTLP endpoint (or a test's exporter): install a tracer provider that exports every span,
    and instrument aiohttp, aio-pika and asyncpg (once). Without one: nothing at all.

    Off, the instrumentations are not even installed: making (unrecorded) spans for every request
    and query cost bid intake far more than the 5 % it may lose to being watched (`make bench`).
    Logs then carry the request id, and a null trace id."""
    global _instrumented, _on
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    if exporter is None:
        return
    # Imported only when tracing is on: every process starts faster without the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _on = True
    if _instrumented:
        return
    _instrumented = True
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    AioPikaInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]  # this instrumentation has no annotations


_NOTHING = context.Context()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def context_of(headers: Mapping[str, object] | None) -> context.Context:
    """The trace context a message was published in (its `traceparent` header), for a consumer's span."""
    if not _on:
        return _NOTHING
    carrier = {k: v for k, v in (headers or {}).items() if isinstance(v, str)}
    return propagate.extract(carrier)


def link_to(headers: Mapping[str, object] | None) -> trace.Link | None:
    """A link to the span that published a message, for a span that handles many messages at once."""
    if not _on:
        return None
    span_context = trace.get_current_span(context_of(headers)).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


def inject_trace(headers: MutableMapping[str, Any]) -> None:
    """Add the current trace context (`traceparent`) to a message's headers; nothing when tracing is
    off (the publisher writes its frames itself, so no instrumentation does it there)."""
    if not _on:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers.update(carrier)


def carried() -> dict[str, str]:
    """The request id and trace context of the work at hand, as message headers to store with an
    outbox row (the relay publishes it later, from no request)."""
    headers: dict[str, str] = {}
    if _on:
        propagate.inject(headers)
    if (rid := request_id.current()) is not None:
        headers[request_id.MESSAGE_HEADER] = rid
    return headers


@contextmanager
def continuing(headers: Mapping[str, object] | None) -> Iterator[None]:
    """Work done on behalf of a stored message: under its trace context and request id."""
    token = context.attach(context_of(headers)) if _on else None
    rid_token = request_id.REQUEST_ID.set(None)
    if headers is not None and request_id.MESSAGE_HEADER in headers:
        request_id.adopt(headers)
    try:
        yield
    finally:
        request_id.REQUEST_ID.reset(rid_token)
        if token is not None:
            context.detach(token)
