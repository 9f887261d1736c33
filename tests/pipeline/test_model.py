"""Many users bid concurrently through the gateway: the result equals the sequential model of the rules."""

from __future__ import annotations

import random
from collections import Counter

import aiohttp

from tests.support.api import Api, place_concurrently
from tests.support.model import run_model
from tests.support.pipeline import BidTap, bid_rows, offer_states, wait_applied

BIDS = 1200
USERS = 20
# Each offer's terms: a start price, a reserve (or none), a fixed increment (or the table).
TERMS = [
    {"bid_price": 5},
    {"bid_price": 5, "reserve_price": 30},
    {"bid_price": 1, "min_increment": 0.5},
    {"bid_price": 2, "reserve_price": 25, "min_increment": 1},
    {"bid_price": 24},
]


async def test_straight_and_proxy_bids_end_as_the_sequential_model_says(stack, settings):
    stack.start_worker("worker-a")
    rng = random.Random(20261127)
    async with aiohttp.ClientSession() as session, BidTap(settings) as tap:
        api = Api(session, stack.gateway_url)
        owner, *bidders = await api.accounts(USERS + 1, "model")
        offers = [await api.create_offer(owner, **terms) for terms in TERMS]
        # Prices from a small set, so equal bids and equal maxima (ties) happen often; half are proxies.
        plan = []
        for _ in range(BIDS):
            price = rng.choice(range(1, 81)) / 2
            proxy = price + rng.choice(range(0, 41)) / 2 if rng.random() < 0.5 else None
            plan.append((rng.choice(bidders), rng.choice(offers)["id"], price, proxy))
        accepted = await place_concurrently(api, plan, concurrency=30)
        assert len(accepted) == BIDS
        await tap.wait_for(BIDS)
        await wait_applied(settings.database_url, [b["id"] for b in accepted])

    offer_ids = [o["id"] for o in offers]
    states = await offer_states(settings.database_url, offer_ids)
    rows = await bid_rows(settings.database_url, offer_ids)
    ties = proxies = superseded = 0
    for offer_id in offer_ids:
        queued = tap.order[offer_id]
        state, applied = states[offer_id], rows[offer_id]
        # The terms as stored (what the offers service made of the request).
        model = run_model(state["start_price"], queued, state["reserve_price"], state["min_increment"])
        ties += sum(n - 1 for n in Counter(b.top for b in queued).values())
        proxies += sum(b.max_price is not None for b in queued)

        # Applied one at a time in queue order, each exactly once.
        assert [str(r["id"]) for r in applied] == [b.id for b in queued]
        # The offer is what the sequential model says.
        assert state["bid_price"] == model.price
        assert str(state["highest_bid_id"]) == model.leader
        assert state["highest_bidder"] == model.leader_name
        assert state["bid_count"] == model.count == len(queued)
        # Every bid has the model's status and reason; exactly one leads; none is left pending.
        assert {str(r["id"]): r["status"] for r in applied} == model.status
        assert {str(r["id"]): r["reason"] for r in applied} == model.reason
        assert sum(r["status"] == "leading" for r in applied) == 1
        superseded += sum(r["status"] == "superseded" for r in applied)
    assert sum(len(tap.order[o]) for o in offer_ids) == BIDS
    assert ties > 100, "the plan should exercise equal maxima"
    assert superseded > 5, "the plan should exercise bidders bidding again"
    assert proxies > BIDS // 3, "intake should queue the proxy bids with their max_price"
    assert sum(states[o]["reserve_price"] is not None for o in offer_ids) == 2
    assert sum(states[o]["min_increment"] is not None for o in offer_ids) == 2
