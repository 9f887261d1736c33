"""CORS at the gateway: only origins listed in CORS_ORIGINS get preflights answered and may read answers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from auction_shared.config import Settings

SHOP = "https://shop.example"
ELSEWHERE = "https://evil.example"


async def _gateway(aiohttp_client, settings: Settings, origins: tuple[str, ...]) -> TestClient:
    from gateway.app import create_app

    return await aiohttp_client(create_app(replace(settings, cors_origins=origins)))


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_listed_origin_gets_its_preflight_answered(aiohttp_client, settings: Settings) -> None:
    client = await _gateway(aiohttp_client, settings, (SHOP,))
    for path, method in (("/v1/offer", "POST"), ("/v1/bid/123", "PUT"), ("/v1/login", "POST")):
        resp = await client.options(path, headers=preflight(SHOP, method))
        assert resp.status == 204, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == SHOP
        assert method in resp.headers["Access-Control-Allow-Methods"]
        assert {"authorization", "content-type"} <= {
            h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert "Origin" in resp.headers.getall("Vary")
        assert "Access-Control-Allow-Credentials" not in resp.headers  # tokens, not cookies


async def test_an_unlisted_origin_gets_no_preflight_and_no_allow_origin(
    aiohttp_client, settings: Settings
) -> None:
    client = await _gateway(aiohttp_client, settings, (SHOP,))
    resp = await client.options("/v1/offer", headers=preflight(ELSEWHERE))
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/ping", headers={"Origin": ELSEWHERE})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_answers_to_a_listed_origin_carry_allow_origin_errors_included(
    aiohttp_client, settings: Settings
) -> None:
    client = await _gateway(aiohttp_client, settings, (SHOP, "https://other.example"))
    resp = await client.get("/ping", headers={"Origin": SHOP})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP
    assert "X-Total-Count" in resp.headers["Access-Control-Expose-Headers"]
    # A page must be able to read a problem document too.
    resp = await client.get("/v1/offer", headers={"Origin": SHOP})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP
    assert "WWW-Authenticate" in resp.headers["Access-Control-Expose-Headers"]


async def test_without_cors_origins_no_cross_origin_access_is_granted(
    aiohttp_client, settings: Settings
) -> None:
    client = await _gateway(aiohttp_client, settings, ())
    resp = await client.options("/v1/offer", headers=preflight(SHOP))
    assert resp.status == 403
    resp = await client.get("/ping", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_a_star_lets_any_origin_in_and_names_it(aiohttp_client, settings: Settings) -> None:
    client = await _gateway(aiohttp_client, settings, ("*",))
    resp = await client.options("/v1/offer", headers=preflight(ELSEWHERE))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ELSEWHERE


async def test_a_preflight_of_an_unknown_route_is_the_usual_404(aiohttp_client, settings: Settings) -> None:
    client = await _gateway(aiohttp_client, settings, (SHOP,))
    resp = await client.options("/v1/nothing-here", headers=preflight(SHOP))
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


async def test_a_plain_options_request_is_not_a_preflight(aiohttp_client, settings: Settings) -> None:
    client = await _gateway(aiohttp_client, settings, (SHOP,))
    resp = await client.options("/v1/offer", headers={"Origin": SHOP})
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("", ()),
        ("https://a.example", ("https://a.example",)),
        (" https://a.example , https://b.example:8443 ", ("https://a.example", "https://b.example:8443")),
    ],
)
def test_cors_origins_come_from_the_environment(raw: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_env({"CORS_ORIGINS": raw}).cors_origins == expected
