"""Event announcing: every event a batch causes is written to the outbox in the batch's transaction.

The worker's outbox relay publishes them after the commit, so a crash between the commit and the
publish cannot lose one (the relay publishes what the database holds), and none goes out for a batch
that rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from auction_shared.events import OfferUpdated
from auction_shared.outbox import OutboxRelay


async def offers_updated(
    conn: asyncpg.Connection, relay: OutboxRelay, offers: Sequence[Mapping[str, Any]]
) -> None:
    """offer.updated for each offer (public shape) whose auction state moved."""
    for offer in offers:
        await relay.add(conn, OfferUpdated(offer))
