"""Several real worker processes: mutual exclusion per offer, queue order across hand-overs, failover."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from pathlib import Path

import aiohttp
import asyncpg

from bid_worker import sharing
from tests.support.api import Api, place_concurrently
from tests.support.model import run_model
from tests.support.pipeline import (
    BidTap,
    applied_count,
    bid_rows,
    names_owning,
    offer_states,
    price,
    shards_of,
    wait_applied,
)
from tests.support.waiting import wait_until

OFFER_COUNT = 5


async def stream_bids(api, bidders, offers, total, waves, rng, between_waves=None):
    """Send `total` bids in `waves` paced a second apart; call `between_waves(i)` after wave i."""
    per_wave = total // waves
    accepted = []
    for wave in range(waves):
        plan = [
            (rng.choice(bidders), rng.choice(offers)["id"], rng.choice(range(1, 201)) / 4)
            for _ in range(per_wave)
        ]
        accepted += await place_concurrently(api, plan, concurrency=20)
        if between_waves is not None:
            await between_waves(wave)
        await asyncio.sleep(1.0)
    return accepted


async def check_against_model(settings, tap, offers, accepted):
    offer_ids = [o["id"] for o in offers]
    await tap.wait_for(len(accepted))
    await wait_applied(settings.database_url, [b["id"] for b in accepted])
    states = await offer_states(settings.database_url, offer_ids)
    rows = await bid_rows(settings.database_url, offer_ids)
    assert sum(len(rows[o]) for o in offer_ids) == len(accepted), "a bid was lost or applied twice"
    for offer_id in offer_ids:
        queued = tap.order[offer_id]
        model = run_model(price(1), queued)
        assert [str(r["id"]) for r in rows[offer_id]] == [b.id for b in queued], "applied out of queue order"
        assert states[offer_id]["bid_price"] == model.price
        assert str(states[offer_id]["highest_bid_id"]) == model.leader
        assert states[offer_id]["bid_count"] == model.count == len(queued)
        assert {str(r["id"]): r["status"] for r in rows[offer_id]} == model.status
    return rows


def read_audit(paths: list[Path]) -> list[dict]:
    batches = []
    for path in paths:
        if path.exists():
            batches += [json.loads(line) for line in path.read_text().splitlines() if line]
    return batches


async def test_two_workers_never_apply_one_offer_at_once_and_keep_queue_order(stack, settings, log_dir):
    audits = [log_dir / f"audit-{n}.jsonl" for n in ("a", "b", "a2")]
    workers = {"a": stack.start_worker("worker-a", WORKER_AUDIT_LOG=str(audits[0]))}
    workers["b"] = stack.start_worker("worker-b", WORKER_AUDIT_LOG=str(audits[1]))
    rng = random.Random(7)

    async def hand_over(wave: int) -> None:
        # Midway, stop worker-a gracefully and start a fresh one: shards move between processes
        # (on top of the hand-overs the workers make to share the shards out).
        if wave == 4:
            assert workers["a"].terminate() == 0, workers["a"].output()
            workers["a2"] = stack.start_worker("worker-a2", WORKER_AUDIT_LOG=str(audits[2]))

    async with aiohttp.ClientSession() as session, BidTap(settings) as tap:
        api = Api(session, stack.gateway_url)
        owner, *bidders = await api.accounts(11, "pair")
        offers = [await api.create_offer(owner, bid_price=1) for _ in range(OFFER_COUNT)]
        accepted = await stream_bids(
            api, bidders, offers, total=2400, waves=12, rng=rng, between_waves=hand_over
        )
        await check_against_model(settings, tap, offers, accepted)

    batches = read_audit(audits)
    mine = {o["id"] for o in offers}
    by_offer: dict[str, list[tuple[float, float, str, list[str]]]] = defaultdict(list)
    for batch in batches:
        ids = defaultdict(list)
        for offer_id, bid_id in batch["bids"]:
            ids[offer_id].append(bid_id)
        for offer_id, bid_ids in ids.items():
            if offer_id in mine:
                by_offer[offer_id].append(
                    (batch["locked_at"], batch["committed_at"], batch["worker"], bid_ids)
                )
    workers_seen = {w for spans in by_offer.values() for _, _, w, _ in spans}
    assert len(workers_seen) >= 2, f"only {workers_seen} applied bids: the test did not exercise two workers"
    for offer_id, spans in by_offer.items():
        spans.sort()
        for (_, end, w1, _), (start, _, w2, _) in zip(spans, spans[1:]):
            assert end <= start, f"{w1} and {w2} applied bids of offer {offer_id} at the same time"
        applied_in_time_order = [b for *_, bid_ids in spans for b in bid_ids]
        assert applied_in_time_order == [b.id for b in tap.order[offer_id]]


async def test_kill_9_of_a_worker_under_load_loses_and_doubles_nothing(stack, settings):
    rng = random.Random(9)
    async with aiohttp.ClientSession() as session, BidTap(settings) as tap:
        api = Api(session, stack.gateway_url)
        seller, *bidders = await api.accounts(9, "kill")
        offers = [await api.create_offer(seller, bid_price=1) for _ in range(OFFER_COUNT)]
        shard_of_offer = await shards_of(settings, [o["id"] for o in offers])
        victim, survivor = names_owning(shard_of_offer, settings.bid_shards, "worker-x", "worker-y")
        victims_offers = [
            o for o, s in shard_of_offer.items() if sharing.owner(s, [victim, survivor]) == victim
        ]
        survivors_offers = [o for o in shard_of_offer if o not in victims_offers]
        # The victim starts first, so it is active on every shard until it hands the survivor's on.
        victim_process = stack.start_worker(victim)
        stack.start_worker(survivor)
        conn = await asyncpg.connect(settings.database_url)
        try:
            stream = asyncio.create_task(stream_bids(api, bidders, offers, total=1800, waves=10, rng=rng))

            async def shared_out() -> bool:
                # The victim applies its own shards' bids and the survivor its own: ownership settled.
                return (
                    await applied_count(conn, victim, victims_offers) > 0
                    and await applied_count(conn, survivor, survivors_offers) > 0
                )

            await wait_until(shared_out, 60, "both workers applying bids of the shards they own")
            assert not stream.done(), "the bids stopped before the kill: it would not be mid-wave"
            victim_process.kill()  # SIGKILL mid-wave: batches in hand are neither acked nor committed
            applied_before_kill = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM bids")
            accepted = await stream
            rows = await check_against_model(settings, tap, offers, accepted)
            taken_over = await applied_count(conn, survivor, victims_offers, after_seq=applied_before_kill)
        finally:
            await conn.close()

    assert taken_over > 0, "the survivor applied no bid of the killed worker's shards after the kill"
    applied_by = {r["processed_by"] for offer_rows in rows.values() for r in offer_rows}
    assert applied_by == {victim, survivor}
    assert victim_process.proc.returncode == -9
