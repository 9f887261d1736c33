"""A stand-in for an OpenTelemetry collector that the bench runs itself: it answers every OTLP/HTTP
trace export with 200 and counts what arrived, so the report can show the spans really left.

It keeps nothing but counts (the tests' collector in tests/support/otlp.py keeps every span, which
a run of many thousand bids would not want), and it runs in the harness's own event loop, which is
idle while hey runs in its thread.
"""

from __future__ import annotations

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.processes import free_port

ANSWER = ExportTraceServiceResponse().SerializeToString()


class TraceSink:
    """`endpoint` is what a process gets as OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self.exports = 0
        self.spans = 0
        self.port = free_port()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app, access_log=None)

    async def __aenter__(self) -> TraceSink:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> tuple[int, int]:
        """(exports, spans) received since the last reset; counting starts again from zero."""
        counted = self.exports, self.spans
        self.exports = self.spans = 0
        return counted

    async def _export(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        self.exports += 1
        self.spans += sum(len(scope.spans) for rs in export.resource_spans for scope in rs.scope_spans)
        return web.Response(body=ANSWER, content_type="application/x-protobuf")
