"""A steady stream of bids during a fault, and the check that the end state is the sequential model's."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from auction_shared.config import Settings
from auction_shared.events import BidPlaced
from tests.reliability.probes import fetch
from tests.reliability.tap import EventTap
from tests.support.api import Account, Api
from tests.support.model import ModelBid, run_model
from tests.support.waiting import wait_until


class BidStream:
    """Bidders bid random prices on random offers until stopped; records 202 ids and 503 refusals.

    Any answer but 202 or 503 fails the stream (a 500 or a hang past the client's deadline).
    """

    def __init__(self, client: Api, bidders: list[Account], offer_ids: list[str]) -> None:
        self.client = client
        self.bidders = bidders
        self.offer_ids = offer_ids
        self.accepted: list[str] = []
        self.refused = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BidStream:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task  # re-raises an unexpected answer

    async def _run(self) -> None:
        await asyncio.gather(*(self._bidder(who, random.Random(i)) for i, who in enumerate(self.bidders)))

    async def _bidder(self, who: Account, rng: random.Random) -> None:
        while not self._stop.is_set():
            price = Decimal(rng.randint(100, 100_000)) / 100
            status, body = await self.client.bid(who, rng.choice(self.offer_ids), float(price))
            if status == 202:
                self.accepted.append(body["id"])
            else:
                assert status == 503, (status, body)
                self.refused += 1
                await asyncio.sleep(0.05)  # a client backing off, as Retry-After asks

    async def until(self, condition: Callable[[BidStream], bool], what: str, timeout: float = 30.0) -> None:
        """Wait for `condition(self)`; a stream that died stops the wait with its error."""
        assert self._task is not None

        def ready() -> bool:
            if self._task.done():  # type: ignore[union-attr]  # asserted not None above; mypy cannot see it in the closure
                self._task.result()  # type: ignore[union-attr]  # asserted not None above; mypy cannot see it in the closure
                raise AssertionError("the bid stream ended early")
            return condition(self)

        await wait_until(ready, timeout, what, interval=0.02)


async def bidders_and_offers(
    client: Api, bidders: int, offers: int
) -> tuple[list[Account], dict[str, Decimal]]:
    """Fresh bidders, and fresh offers of a fresh seller each starting at 5.00 (the model's start)."""
    seller = await client.account("seller")
    who = [await client.account("bidder") for _ in range(bidders)]
    start = {(await client.create_offer(seller, bid_price=5))["id"]: Decimal("5.00") for _ in range(offers)}
    return who, start


def queue_order(tap: EventTap) -> dict[str, list[ModelBid]]:
    """Each offer's bids in its shard queue's order: with one publishing channel (one bids process),
    the tap's queue receives them in the same order, and a redelivered copy is dropped by its id."""
    order: dict[str, list[ModelBid]] = defaultdict(list)
    for event in tap.first_copies():
        assert isinstance(event, BidPlaced)
        bid = event
        order[str(bid.offer_id)].append(ModelBid(str(bid.bid_id), bid.bid_price, bid.username))
    return order


async def wait_applied(
    settings: Settings, offers: dict[str, Decimal], tap: EventTap, accepted: list[str], timeout: float = 60.0
) -> None:
    """Wait until the tap saw every 202 bid and the database holds as many bids as the tap saw."""
    await wait_until(
        lambda: set(accepted) <= {e.event_id for e in tap.events}, 30, "every 202 bid to reach the broker"
    )
    queued = {b.id for bids in queue_order(tap).values() for b in bids}

    async def applied() -> bool:
        rows = await fetch(
            settings.database_url,
            "SELECT count(*) AS n FROM bids WHERE offer_id = ANY($1::uuid[]) AND status <> 'pending'",
            [uuid.UUID(o) for o in offers],
        )
        return rows[0]["n"] >= len(queued)

    await wait_until(applied, timeout, f"all {len(queued)} queued bids to be applied")


async def assert_matches_model(
    settings: Settings, offers: dict[str, Decimal], tap: EventTap, accepted: list[str]
) -> None:
    """Every 202 bid applied once, nothing else applied, each offer as the sequential model says.

    A bid answered 503 may still have reached the queue (the confirm, not the message, was lost):
    it is then in the tap and in the model like any other, applied once.
    """
    order = queue_order(tap)
    queued = {b.id for bids in order.values() for b in bids}
    assert set(accepted) <= queued, "a bid answered 202 never reached the broker"
    rows = await fetch(
        settings.database_url,
        "SELECT id, status, reason FROM bids WHERE offer_id = ANY($1::uuid[])",
        [uuid.UUID(o) for o in offers],
    )
    applied = {str(r["id"]): r for r in rows}
    assert len(applied) == len(rows)
    assert set(applied) == queued, "bids lost or invented between the queue and the database"
    states = {
        str(r["id"]): r
        for r in await fetch(
            settings.database_url,
            "SELECT id, bid_price, highest_bid_id, bid_count FROM offers WHERE id = ANY($1::uuid[])",
            [uuid.UUID(o) for o in offers],
        )
    }
    for offer_id, start in offers.items():
        model = run_model(start, order[offer_id])
        state = states[offer_id]
        assert state["bid_count"] == model.count == len(order[offer_id])  # none doubled
        assert state["bid_price"] == model.price
        assert (str(state["highest_bid_id"]) if state["highest_bid_id"] else None) == model.leader
        for bid in order[offer_id]:
            row = applied[bid.id]
            assert (row["status"], row["reason"]) == (model.status[bid.id], model.reason[bid.id]), bid
