"""The worst moment: the active bid-worker is killed (-9) as RabbitMQ drops, under a steady stream."""

from __future__ import annotations

from auction_shared.config import Settings
from tests.reliability.bidding import BidStream, assert_matches_model, bidders_and_offers, wait_applied
from tests.reliability.tap import EventTap
from tests.support.api import Api
from tests.support.faultproxy import FaultProxy
from tests.support.processes import Stack


async def test_worker_kill_9_and_broker_cut_together_lose_nothing_and_double_nothing(
    settings: Settings, faulty_stack: Stack, broker_proxy: FaultProxy, client: Api
) -> None:
    first = faulty_stack.start_worker("rel-crash-first")
    faulty_stack.start_worker("rel-crash-standby")
    bidders, offers = await bidders_and_offers(client, bidders=4, offers=4)
    # Bound before the first bid, so it holds every bid in the shard queues' order.
    async with EventTap(settings, "bid.placed") as tap:
        async with BidStream(client, bidders, list(offers)) as stream:
            await stream.until(lambda s: len(s.accepted) >= 80, "80 bids before the crash")
            # Batches in the killed worker's hands were neither acked nor (maybe) committed.
            first.kill()
            broker_proxy.cut()
            await stream.until(lambda s: s.refused >= 10, "bid intake to refuse during the cut")
            taken = len(stream.accepted)
            broker_proxy.restore()
            await stream.until(lambda s: len(s.accepted) >= taken + 80, "80 bids after the restore")
            # A fresh worker joins while bids still flow, as an orchestrator would restart one.
            faulty_stack.start_worker("rel-crash-replacement")
            await stream.until(lambda s: len(s.accepted) >= taken + 140, "bids after the restart")
        await wait_applied(settings, offers, tap, stream.accepted)
    await assert_matches_model(settings, offers, tap, stream.accepted)
