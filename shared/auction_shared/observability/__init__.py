"""Operations: Prometheus metrics, JSON logs with request ids, OpenTelemetry traces, one setup per process.

`observe(service, settings)` is the one call a process makes at start; the metric objects live in
`metrics`, the request id in `request_id`, the tracer helpers in `tracing`.
"""

from .setup import observe

__all__ = ["observe"]
