"""End to end through real processes: signup, login, create an offer, list it and read it, via :gateway."""

from __future__ import annotations

import uuid

import aiohttp

from tests.support.processes import Stack


async def test_signup_login_create_list_get_through_the_gateway_process(stack: Stack):
    base = stack.gateway_url
    username, password = f"e2e_{uuid.uuid4().hex[:10]}", "baku-" + uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/ping") as resp:
            assert resp.status == 200 and await resp.json() == {"status": "ok"}
        async with http.get(f"{base}/health") as resp:
            health = await resp.json()
            assert resp.status == 200, health
            assert {"auth", "offers", "bids"} <= set(health["dependencies"])

        async with http.post(f"{base}/v1/signup", json={"username": username, "password": password}) as resp:
            assert resp.status == 201, await resp.text()
            account = await resp.json()
            assert account["username"] == username
        async with http.post(f"{base}/v1/signup", json={"username": username, "password": password}) as resp:
            assert resp.status == 409 and resp.content_type == "application/problem+json"
        async with http.post(f"{base}/v1/login", json={"username": username, "password": "wrong"}) as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.post(f"{base}/v1/login", json={"username": username, "password": password}) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}

        async with http.get(f"{base}/v1/offer") as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")

        body = {"bid_price": 12.34, "title": "Swiss Shales", "lifetime": 0, "photo_url": ""}
        async with http.post(f"{base}/v1/offer", json=body, headers=auth) as resp:
            assert resp.status == 201, await resp.text()
            offer = await resp.json()
        assert offer["title"] == "Swiss Shales" and offer["bid_price"] == 12.34
        assert offer["created_by"] == username and offer["sold"] is False and offer["bid_count"] == 0

        async with http.get(f"{base}/v1/offer?sortKey=-created&size=100&page=0", headers=auth) as resp:
            assert resp.status == 200
            listed = await resp.json()
            assert int(resp.headers["X-Total-Count"]) >= 1
        assert offer in listed

        for path in (f"/v1/offer/{offer['id']}", f"/v1/offers/{offer['id']}"):
            async with http.get(base + path, headers=auth) as resp:
                assert resp.status == 200
                assert await resp.json() == offer
        async with http.get(f"{base}/v1/offer/{uuid.uuid4()}", headers=auth) as resp:
            assert resp.status == 404 and resp.content_type == "application/problem+json"
        async with http.get(f"{base}/v1/nothing-here", headers=auth) as resp:
            assert resp.status == 404 and resp.content_type == "application/problem+json"
