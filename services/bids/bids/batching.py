"""The bids of one offer that arrive in one turn of the event loop leave as one message.

Under load many bids reach the bids service for the same offer at once (a hot auction, the last
seconds before its end). Each is recorded pending on its own, then handed here; at the end of the
loop turn every offer's bids go out as one `BidsPlaced` (a lone bid as the plain `BidPlaced` it
always was), and one confirm from the broker answers all of them. A message costs RabbitMQ and
the worker about the same whatever it holds, so fewer messages is most of what a bid costs after its
202 (bench/findings.md, "one message per offer and loop turn").

Nothing waits to fill a message: a turn's bids are what concurrent requests brought, so a lone bid
leaves as soon as it would have alone. The guarantees are a single bid's:

- a 202 only after the broker confirmed the message holding the bid; a nack, a return (no queue)
  or a lost channel fails every bid of that message, each with its own 503;
- an offer's bids are in the message in the order they were handed over, and messages leave in the
  order their turns ended, so the shard queue holds them in the order intake took them;
- the message carries the first bid's request id and trace context, as a worker's batch of several
  messages does (the other bids are named in the worker's DEBUG lines by their ids).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid

from auction_shared.broker import Publisher
from auction_shared.events import BidPlaced, BidsPlaced, Contract
from auction_shared.problems import DependencyDown

log = logging.getLogger(__name__)

# At most this many bids in one message (a busier turn sends several, in order).
MAX_BIDS_SENT_TOGETHER = 64

_Waiting = tuple[BidPlaced, "asyncio.Future[None]"]


class BidBatches:
    """Gathers the bids handed over in one loop turn, by offer, and publishes each offer's in one message."""

    def __init__(self, publisher: Publisher, limit: int = MAX_BIDS_SENT_TOGETHER) -> None:
        self._publisher = publisher
        self._limit = limit
        # Each offer's bids of this turn, with the context of its first (its request id and trace).
        self._waiting: dict[uuid.UUID, tuple[contextvars.Context, list[_Waiting]]] = {}
        self._flush_scheduled = False
        self._publishing: set[asyncio.Task[None]] = set()

    async def send(self, bid: BidPlaced) -> None:
        """Return once the broker has confirmed the message holding the bid, else raise as
        `Publisher.send` does (DependencyDown)."""
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[None] = loop.create_future()
        if (waiting := self._waiting.get(bid.offer_id)) is None:
            waiting = self._waiting[bid.offer_id] = (contextvars.copy_context(), [])
        waiting[1].append((bid, confirmed))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        await confirmed

    def _flush(self) -> None:
        """Start one publish per offer (and per `limit` bids), in the order the offers came."""
        self._flush_scheduled = False
        waiting, self._waiting = self._waiting, {}
        loop = asyncio.get_running_loop()
        for context, group in waiting.values():
            for start in range(0, len(group), self._limit):
                part = group[start : start + self._limit]
                # Tasks start in the order made, and each submits its message before it first waits.
                task = loop.create_task(self._publish(part), context=context.copy())
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)

    async def _publish(self, part: list[_Waiting]) -> None:
        bids = [bid for bid, _ in part]
        message: Contract = (
            bids[0] if len(bids) == 1 else BidsPlaced(offer_id=bids[0].offer_id, bids=tuple(bids))
        )
        try:
            await self._publisher.send(message)
        except DependencyDown as exc:
            for _, confirmed in part:  # each request its own exception, raised in its own task
                if not confirmed.done():
                    confirmed.set_exception(DependencyDown(exc.dependency, exc.detail))
            return
        except Exception:
            log.exception("a message of %d bids was not published", len(part))
            for _, confirmed in part:
                if not confirmed.done():
                    confirmed.set_exception(DependencyDown("RabbitMQ"))
            return
        except asyncio.CancelledError:
            for _, confirmed in part:
                confirmed.cancel()
            raise
        for _, confirmed in part:
            if not confirmed.done():
                confirmed.set_result(None)

    async def close(self) -> None:
        """Let the publishes under way end (each is bounded by the publisher's timeout)."""
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
