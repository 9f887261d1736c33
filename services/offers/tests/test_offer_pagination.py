"""Paging through offers that share their sort value: pages never overlap or skip (ties broken by id)."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from tests.support.inprocess import account

pytestmark = pytest.mark.asyncio(loop_scope="module")

THROUGH_API = 23
# Walks stay short on a big shared table: at most this many pages per walk, the page grows instead.
MAX_PAGES = 60


def sort_value(offer: dict[str, Any], key: str) -> Any:
    if key == "bid_price":
        return offer["bid_price"]
    return datetime.fromisoformat(offer["go_live" if key == "golive" else "created_at"])


async def walk(client, headers, sort_key: str, size: int) -> tuple[list[dict[str, Any]], set[int]]:
    """Every page from 0 until a short one; returns the offers in order and each page's X-Total-Count."""
    seen: list[dict[str, Any]] = []
    totals: set[int] = set()
    for page in range(100_000):
        resp = await client.get(f"/v1/offer?sortKey={sort_key}&size={size}&page={page}", headers=headers)
        assert resp.status == 200, await resp.text()
        totals.add(int(resp.headers["X-Total-Count"]))
        batch = await resp.json()
        assert len(batch) <= size
        seen.extend(batch)
        if len(batch) < size:
            return seen, totals
    raise AssertionError("the walk never ended")


async def test_pages_never_overlap_or_skip_among_equal_sort_values(world, settings):
    owner = await account(world.auth, "pager")
    title = f"tie {uuid.uuid4().hex[:8]}"
    go_live = datetime.now(timezone.utc).replace(microsecond=123456) + timedelta(days=1)
    body = {"title": title, "bid_price": 42, "go_live": go_live.isoformat()}

    async def create() -> str:
        resp = await world.offers.post("/v1/offer", json=body, headers=owner.headers)
        assert resp.status == 201, await resp.text()
        return (await resp.json())["id"]

    through_api = set(await asyncio.gather(*(create() for _ in range(THROUGH_API))))

    conn = await asyncpg.connect(settings.database_url)
    try:
        total_before = await conn.fetchval("SELECT count(*) FROM offers")
        size = max(7, math.ceil((total_before + 200) / MAX_PAGES))
        # One transaction, so these rows share created_at as well: a tie for every sort key. Enough of
        # them that the tie spans at least three page boundaries whatever the page size.
        sql_ids = [uuid.uuid4() for _ in range(max(12, 3 * size))]
        await conn.execute(
            "INSERT INTO offers (id, title, start_price, bid_price, go_live, created_by_id, created_by)"
            " SELECT id, $2, 42, 42, $3, $4, $5 FROM unnest($1::uuid[]) AS id",
            sql_ids,
            title,
            go_live,
            uuid.uuid4(),
            owner.username,
        )
        same_created_at = await conn.fetchval(
            "SELECT count(DISTINCT created_at) FROM offers WHERE id = ANY($1::uuid[])", sql_ids
        )
        assert same_created_at == 1
    finally:
        await conn.close()
    in_one_transaction = {str(i) for i in sql_ids}
    mine = through_api | in_one_transaction

    keys = ["golive", "bid_price", "title", "created"]
    walks = await asyncio.gather(
        *(walk(world.offers, owner.headers, prefix + key, size) for key in keys for prefix in ("", "-"))
    )
    for (offers, totals), (key, descending) in zip(walks, [(k, d) for k in keys for d in (False, True)]):
        label = ("-" if descending else "") + key
        ids = [o["id"] for o in offers]
        assert len(ids) == len(set(ids)), f"{label}: an offer appeared on two pages"
        assert totals == {len(ids)}, f"{label}: pages skipped offers (or X-Total-Count is wrong)"
        assert mine <= set(ids), f"{label}: some of my offers were never listed"

        # Within a tie, the order is by id in the same direction.
        tie = in_one_transaction if key == "created" else mine
        tied_in_walk = [i for i in ids if i in tie]
        assert tied_in_walk == sorted(tied_in_walk, key=uuid.UUID, reverse=descending), label

        # Across the whole table, (sort value, id) only ever moves one way. Titles sort by the
        # database's collation, which Python does not reproduce: only their tie is checked.
        if key != "title":
            ranks = [(sort_value(o, key), uuid.UUID(o["id"])) for o in offers]
            assert ranks == sorted(ranks, reverse=descending), label
