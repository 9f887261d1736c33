"""The /index page in headless Chromium (Debian's, driven by Playwright) against real service processes:
a person signs up, sees an offer created through the API appear without a reload, bids and watches
the price move; the seller, in another browser, accepts the bid and both pages show it sold. And a
whole auction by the rules: a proxy bid that meets the reserve, an outbid alert, the countdown moving
with each extension, the automatic end, "you won" for the winner and the sale for the seller.
Screenshots land in artifacts/ for a human to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.processes import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"
# No sandbox: CI runs as root; the rest keeps Chromium from reaching out to the network at all.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = ROOT / "artifacts"
WAIT_MS = 20_000  # a generous deadline for each thing the page must show, not a speed requirement
# The automatic end: 25 s of soft close after the last bid, then the end within seconds.
END_WAIT_MS = 90_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - one stat before the browser starts
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does it)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def new_page(browser: Browser, problems: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    return page


async def sign_up_through_the_page(page: Page, base: str, username: str, password: str) -> None:
    await page.goto(f"{base}/index")
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.click("#signup-button")
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
    await expect(page.locator("#who")).to_have_text(f"logged in as {username}")


async def log_in_through_the_page(page: Page, base: str, username: str, password: str) -> None:
    await page.goto(f"{base}/index")
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.click("#login-button")
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)


async def test_a_person_sees_a_new_offer_live_bids_and_the_seller_accepts(
    live_stack: Stack, browser: Browser
) -> None:
    base = live_stack.gateway_url
    problems: list[str] = []
    seller = {"username": f"seller_{uuid.uuid4().hex[:8]}", "password": "pw-" + uuid.uuid4().hex[:6]}
    bidder = {"username": f"bidder_{uuid.uuid4().hex[:8]}", "password": "pw-" + uuid.uuid4().hex[:6]}

    page = await new_page(browser, problems)
    await sign_up_through_the_page(page, base, **bidder)

    # The seller creates an offer through the API; the bidder's page shows it without a reload.
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/signup", json=seller) as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(f"{base}/v1/login", json=seller) as resp:
            token = (await resp.json())["token"]
        title = f"Swiss Shales {uuid.uuid4().hex[:4]}"
        async with http.post(
            f"{base}/v1/offer",
            json={"title": title, "bid_price": 10},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            offer = await resp.json()
    row = page.locator(f'#offers tr[data-offer-id="{offer["id"]}"]')
    await expect(row).to_contain_text(title, timeout=WAIT_MS)
    await expect(row.locator(".price-cell")).to_have_text("10.00")
    await expect(page.locator("#event-log")).to_contain_text('"event":"offerCreated"')

    # Open it, bid, and watch the price move (offerUpdated) in the detail and in the list.
    await row.click()
    await expect(page.locator("#detail-title")).to_have_text(title)
    await expect(page.locator("#detail-price")).to_have_text("10.00")
    await page.fill("#bid-price", "42.50")
    await page.click("#bid-button")
    await expect(page.locator("#detail-price")).to_have_text("42.50", timeout=WAIT_MS)
    await expect(row.locator(".price-cell")).to_have_text("42.50")
    await expect(page.locator("#detail-leader")).to_have_text(f"{bidder['username']} (you)")
    await expect(page.locator("#bid-outcome")).to_contain_text("leads", timeout=WAIT_MS)

    # The seller, in another browser, opens the offer and accepts the bid; both pages show it sold.
    seller_page = await new_page(browser, problems)
    await log_in_through_the_page(seller_page, base, **seller)
    await seller_page.locator(f'#offers tr[data-offer-id="{offer["id"]}"]').click()
    accept = seller_page.locator(".accept-button")
    await expect(accept).to_have_count(1, timeout=WAIT_MS)
    await accept.click()
    await expect(seller_page.locator("#detail-state")).to_have_text("sold", timeout=WAIT_MS)
    await expect(page.locator("#detail-state")).to_have_text("sold", timeout=WAIT_MS)
    await expect(page.locator("#event-log")).to_contain_text('"event":"offerSold"')

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "index-bidder.png"), full_page=True)
    await seller_page.screenshot(path=str(ARTIFACTS / "index-seller.png"), full_page=True)
    assert problems == []


async def test_an_auction_runs_to_its_automatic_end_with_a_proxy_bid_extensions_and_private_alerts(
    live_stack: Stack, browser: Browser
) -> None:
    base = live_stack.gateway_url
    problems: list[str] = []
    people = {
        name: {"username": f"{name}_{uuid.uuid4().hex[:8]}", "password": "pw-" + uuid.uuid4().hex[:6]}
        for name in ("seller", "alice", "bob")
    }
    seller_page, alice, bob = [await new_page(browser, problems) for _ in range(3)]
    await sign_up_through_the_page(seller_page, base, **people["seller"])
    await sign_up_through_the_page(alice, base, **people["alice"])
    await sign_up_through_the_page(bob, base, **people["bob"])

    # The seller puts up a lot through the page: 10.00, a hidden reserve of 30, and a soft close as
    # long as its life, so every bid that moves the price moves the end to 25 s after it.
    title = f"Barometer {uuid.uuid4().hex[:4]}"
    await seller_page.fill("#create-title", title)
    await seller_page.fill("#create-price", "10")
    await seller_page.fill("#create-lifetime", "25")
    await seller_page.fill("#create-reserve", "30")
    await seller_page.fill("#create-soft-close", "25")
    await seller_page.click("#create-button")
    row = alice.locator("#offers tr", has_text=title)
    await expect(row).to_have_count(1, timeout=WAIT_MS)
    await row.click()
    await expect(alice.locator("#detail-price")).to_have_text("10.00")
    await expect(alice.locator("#detail-min-next")).to_have_text("10.00")
    await expect(alice.locator("#detail-reserve")).to_have_text("reserve not met")
    countdown = alice.locator("#detail-countdown")
    await expect(countdown).to_contain_text("ends in")
    first_end = await countdown.get_attribute("data-ends-at")

    # Alice bids 10 with a maximum of 40: she leads, and since her maximum reaches the reserve the
    # price jumps to it. Her bid moved the end.
    await alice.fill("#bid-price", "10")
    await alice.fill("#bid-max", "40")
    await alice.click("#bid-button")
    await expect(alice.locator("#detail-price")).to_have_text("30.00", timeout=WAIT_MS)
    await expect(alice.locator("#detail-reserve")).to_have_text("reserve met")
    await expect(alice.locator("#detail-min-next")).to_have_text("31.00")
    await expect(alice.locator("#alerts")).to_contain_text("Your bid leads", timeout=WAIT_MS)
    await expect(countdown).not_to_have_attribute("data-ends-at", first_end or "", timeout=WAIT_MS)
    second_end = await countdown.get_attribute("data-ends-at")
    assert first_end and second_end and datetime.fromisoformat(second_end) > datetime.fromisoformat(first_end)

    # Bob bids 41 with a maximum of 60: the system outbids Alice's 40 by one increment. Alice hears it
    # privately, and the end moves again on her page.
    await bob.locator("#offers tr", has_text=title).click()
    await expect(bob.locator("#detail-min-next")).to_have_text("31.00", timeout=WAIT_MS)
    await bob.fill("#bid-price", "41")
    await bob.fill("#bid-max", "60")
    await bob.click("#bid-button")
    await expect(alice.locator("#alerts")).to_contain_text("You were outbid", timeout=WAIT_MS)
    await expect(alice.locator("#detail-price")).to_have_text("41.00")
    await expect(alice.locator("#detail-leader")).to_have_text(people["bob"]["username"])
    await expect(bob.locator("#alerts")).to_contain_text("Your bid leads", timeout=WAIT_MS)
    await expect(countdown).not_to_have_attribute("data-ends-at", second_end, timeout=WAIT_MS)
    await expect(countdown).to_contain_text("(extended)")
    ARTIFACTS.mkdir(exist_ok=True)
    await alice.screenshot(path=str(ARTIFACTS / "index-auction-running.png"), full_page=True)

    # Nobody does anything more: the auction ends by itself. Bob won; Alice sees it sold to him; the
    # seller hears the sale.
    await expect(bob.locator("#detail-end")).to_have_text(
        "You won: it is yours for 41.00.", timeout=END_WAIT_MS
    )
    await expect(bob.locator("#alerts")).to_contain_text("You won", timeout=WAIT_MS)
    await expect(alice.locator("#detail-end")).to_contain_text(
        f"Sold to {people['bob']['username']} for 41.00"
    )
    await expect(alice.locator("#detail-countdown")).to_contain_text("ended")
    await expect(alice.locator("#bid-form")).to_be_hidden()
    await expect(seller_page.locator("#alerts")).to_contain_text(
        f"Your offer “{title}” sold", timeout=WAIT_MS
    )

    await bob.screenshot(path=str(ARTIFACTS / "index-auction-won.png"), full_page=True)
    await alice.screenshot(path=str(ARTIFACTS / "index-auction-lost.png"), full_page=True)
    assert problems == []
