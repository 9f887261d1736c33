"""The OpenAPI description: in step with the gateway's routes and the services' validation, and
schemathesis finds no server error and no response that breaks it on a running stack."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from auction_shared.config import Settings
from tests.support.processes import Stack

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
# Served by the gateway but not part of the API: the /index page's scripts and styles.
NOT_API = {"/static"}
# Checks of the schemathesis run: the server never fails, and every answer matches the description.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
# Small enough to run in about a minute on two shared cores; a fixed seed keeps CI reproducible
# (change it locally to explore further).
MAX_EXAMPLES = "10"
SEED = "20261127"


@pytest.fixture(scope="module")
def spec() -> dict:
    from gateway.openapi import load_spec

    return load_spec()


def gateway_routes(settings: Settings) -> set[tuple[str, str]]:
    from gateway.app import create_app

    app = create_app(settings)
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if route.method == "HEAD" or any(path.startswith(p) for p in NOT_API):
            continue  # aiohttp adds HEAD to every GET
        routes.add((route.method, path))
    return routes


def test_the_spec_lists_exactly_the_gateways_routes_and_methods(settings: Settings, spec: dict) -> None:
    described = {
        (method.upper(), path) for path, item in spec["paths"].items() for method in item if method in METHODS
    }
    routed = gateway_routes(settings)
    assert routed - described == set(), "routes the description misses"
    assert described - routed == set(), "described routes the gateway does not have"


def test_the_spec_is_openapi_3_1_with_bearer_auth_on_every_v1_route_but_accounts(spec: dict) -> None:
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"] == {
        **spec["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    public = {"/v1/signup", "/v1/login", "/v1/stream"}  # the stream authenticates in its first message
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/") and path not in public:
                assert operation.get("security") == [{"bearer": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def test_request_constraints_match_the_services_validation(spec: dict) -> None:
    from auction_shared.events import MAX_USERNAME
    from auth.handlers import Credentials
    from bids.intake import MAX_IDEMPOTENCY_KEY, NewBid
    from offers.handlers import MAX_EXTENSION, MAX_LIFETIME, MAX_SOFT_CLOSE, NewOffer
    from offers.rules import SORT_COLUMNS, STATUSES

    username = Credentials.model_json_schema()["properties"]["username"]
    described = _schema(spec, "Credentials")["properties"]["username"]
    for key in ("minLength", "maxLength", "pattern"):
        assert described[key] == username[key], key
    offer = NewOffer.model_json_schema()["properties"]
    described = _schema(spec, "NewOffer")["properties"]
    assert (described["title"]["minLength"], described["title"]["maxLength"]) == (
        offer["title"]["minLength"],
        offer["title"]["maxLength"],
    )
    assert described["lifetime"]["maximum"] == MAX_LIFETIME
    assert described["soft_close_seconds"]["maximum"] == MAX_SOFT_CLOSE
    assert described["max_extension_seconds"]["maximum"] == MAX_EXTENSION
    assert described["max_extension_seconds"]["default"] == offer["max_extension_seconds"]["default"]
    assert set(described) == set(offer)
    assert set(_schema(spec, "NewOffer")["required"]) == set(NewOffer.model_json_schema()["required"])
    sort_keys = next(p for p in spec["paths"]["/v1/offer"]["get"]["parameters"] if p["name"] == "sortKey")
    assert set(sort_keys["schema"]["enum"]) == {k for key in SORT_COLUMNS for k in (key, "-" + key)}
    for base in ("/v1/offer", "/v1/offers"):
        query = {p["name"]: p["schema"] for p in spec["paths"][base]["get"]["parameters"]}
        assert set(query["status"]["enum"]) == set(STATUSES)
        assert query["created_by"]["maxLength"] == MAX_USERNAME
    assert set(_schema(spec, "NewBid")["properties"]) == set(NewBid.model_json_schema()["properties"])
    idem = next(p for p in spec["paths"]["/v1/bid"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert idem["schema"]["maxLength"] == MAX_IDEMPOTENCY_KEY


async def test_the_gateway_serves_its_description(aiohttp_client, settings: Settings, spec: dict) -> None:
    from gateway.app import create_app

    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == spec


async def _token(base_url: str) -> str:
    creds = {"username": f"fuzz_{uuid.uuid4().hex[:10]}", "password": "fuzz-" + uuid.uuid4().hex[:8]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/v1/signup", json=creds) as resp:
            assert resp.status == 201, await resp.text()
        async with session.post(f"{base_url}/v1/login", json=creds) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["token"]


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_description(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start_worker("fuzz-worker")
    token = await _token(stack.gateway_url)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        # One worker: hypothesis parses lambda sources with ast, which CPython 3.11 cannot do from two
        # threads at once ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    try:
        # In tmp_path: schemathesis keeps a .schemathesis/ cache in its working directory.
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)  # noqa: ASYNC221 - the stack under test runs in other processes
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"schemathesis did not finish in 240s:\n{exc.stdout}") from None
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    # Every operation of the description was exercised, none skipped or filtered out.
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout
    assert selected[1] == selected[2] == tested[1], run.stdout
