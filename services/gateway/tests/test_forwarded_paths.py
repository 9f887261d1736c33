"""The gateway sends a service only the route it matched: paths are rebuilt from validated values.

Recording stand-ins take the place of the three services, and raw request lines (no client library to
normalise them) try `..`, encoded slashes and other tricks to reach a route the gateway did not match.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from auction_shared.config import Settings
from auction_shared.tokens import issue_token

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Which service owns a forwarded (method, path): the gateway's route table, written out again.
OWNERS = [
    ("auth", "POST", r"/v1/(signup|login)"),
    ("offers", "(GET|POST)", r"/v1/offers?"),
    ("offers", "GET", rf"/v1/offers?/{UUID}"),
    ("bids", "GET", rf"/v1/offers?/{UUID}/bids"),
    ("bids", "(GET|POST)", r"/v1/bids?"),
    ("bids", "GET", rf"/v1/bids?/{UUID}"),
    ("offers", "PUT", rf"/v1/bids?/{UUID}"),
]


def owner(method: str, path: str) -> str | None:
    for service, methods, pattern in OWNERS:
        if re.fullmatch(methods, method) and re.fullmatch(pattern, path):
            return service
    return None


@dataclass
class Recorder:
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def app(self, name: str) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.seen.append((name, request.method, request.raw_path))
            return web.json_response({"service": name})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


@dataclass
class Gateway:
    port: int
    recorder: Recorder
    token: str

    async def send(self, method: str, target: str) -> int:
        """One raw request line exactly as given; the answer's status."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            body = b"{}" if method in ("POST", "PUT") else b""
            writer.write(
                f"{method} {target} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            status_line = await reader.readline()
            await reader.read()
            return int(status_line.split()[1])
        finally:
            writer.close()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    from gateway.app import create_app

    recorder = Recorder()
    fakes = {name: TestServer(recorder.app(name), host="127.0.0.1") for name in ("auth", "offers", "bids")}
    for server in fakes.values():
        await server.start_server()
    routed = replace(
        settings,
        auth_url=str(fakes["auth"].make_url("")).rstrip("/"),
        offers_url=str(fakes["offers"].make_url("")).rstrip("/"),
        bids_url=str(fakes["bids"].make_url("")).rstrip("/"),
    )
    server = TestServer(create_app(routed), host="127.0.0.1")
    await server.start_server()
    token = issue_token(settings.jwt_secret, uuid.uuid4(), "path_tester", 600)
    try:
        yield Gateway(server.port or 0, recorder, token)
    finally:
        await server.close()
        for fake in fakes.values():
            await fake.close()


ID = str(uuid.uuid4())
TRICKS = [
    ("GET", "/v1/offer/..%2F..%2Fv1%2Fbid%2F" + ID),
    ("GET", "/v1/offer/%2e%2e%2Fbids"),
    ("GET", "/v1/offer/%2e%2e"),
    ("GET", f"/v1/offers/{ID}%2F..%2F..%2Fbid%2F{ID}/bids"),
    ("GET", f"/v1/bid/{ID}%2F..%2F..%2Foffer"),
    ("GET", f"/v1/bid/{ID}%2f..%2f..%2fsignup"),
    ("PUT", "/v1/bid/..%2F..%2Fv1%2Fsignup"),
    ("PUT", f"/v1/bid/{ID}%2F..%2F..%2Fbid"),
    ("GET", "/v1/bid/%252e%252e%252fsignup"),
    ("GET", f"/v1/offer/{ID}%00"),
    ("GET", f"/v1/offer/{ID}%3F..%2Fbids"),
    ("GET", f"/v1/offer/{ID}%23/bids"),
    ("GET", f"/v1/offer/{ID}/bids/../../../bid/{ID}"),
    ("GET", f"/v1/offer/./{ID}"),
    ("POST", "/v1/bid/../signup"),
    ("GET", f"/v1/offer/{ID}?next=/../../v1/bid"),
]


async def test_no_trick_in_a_path_reaches_another_route_of_any_service(gateway: Gateway) -> None:
    for method, target in TRICKS:
        status = await gateway.send(method, target)
        assert status < 500, (method, target, status)
    wrong = [
        (service, method, path)
        for service, method, path in gateway.recorder.seen
        if owner(method, path.partition("?")[0]) != service
    ]
    assert not wrong, f"forwarded beyond the matched route: {wrong}"


async def test_a_malformed_id_is_the_services_404_and_never_forwarded(gateway: Gateway) -> None:
    for target in (f"/v1/bid/{ID}%2F..%2F..%2Foffer", "/v1/offer/not-an-id", "/v1/offer/%2e%2e/bids"):
        assert await gateway.send("GET", target) == 404, target
    assert gateway.recorder.seen == []


async def test_a_valid_route_is_forwarded_as_its_template_with_the_canonical_id_and_query(
    gateway: Gateway,
) -> None:
    assert await gateway.send("GET", f"/v1/offers/{ID.upper()}/bids?page=1&size=2") == 200
    assert await gateway.send("PUT", f"/v1/bids/{ID}") == 200
    assert gateway.recorder.seen == [
        ("bids", "GET", f"/v1/offers/{ID}/bids?page=1&size=2"),
        ("offers", "PUT", f"/v1/bids/{ID}"),
    ]
