"""Fixtures for bid pipeline tests: an in-process worker and a raw publisher on the test broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import aio_pika
import pytest

from auction_shared.broker import Topology
from auction_shared.config import Settings
from auction_shared.events import BidPlaced
from bid_worker.settings import WorkerSettings
from bid_worker.worker import BidWorker
from tests.support.cleanup import delete_broker_names


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    """The run's database, but broker names of this test's own.

    These tests decide when a worker runs and count what reaches a queue: a worker or a bid left
    over by another test on the same shard queues would make them prove nothing.
    """
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}.{uuid.uuid4().hex[:8]}")
    yield own
    await delete_broker_names(own)


class WorkerControl:
    """Start and stop a real BidWorker inside the test's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: BidWorker | None = None

    async def start(self) -> BidWorker:
        self.worker = BidWorker(self.settings, WorkerSettings(worker_id="in-process"))
        await self.worker.start()
        return self.worker

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None


@pytest.fixture
async def worker_control(settings: Settings) -> AsyncIterator[WorkerControl]:
    control = WorkerControl(settings)
    yield control
    await control.stop()


@pytest.fixture
async def worker(worker_control: WorkerControl) -> AsyncIterator[BidWorker]:
    yield await worker_control.start()


@pytest.fixture
async def raw_channel(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A publisher-confirmed channel on the test broker, for messages the bids service would never send."""
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    yield channel
    await connection.close()


async def publish_raw(
    channel, settings: Settings, body: bytes, offer_id: str, message_id: str | None = None
) -> None:
    exchange = await channel.get_exchange(Topology.from_settings(settings).events_exchange)
    await exchange.publish(
        aio_pika.Message(
            body,
            headers={"offer_id": offer_id},
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key="bid.placed",
        mandatory=True,
    )


def raw_bid(
    offer_id: str,
    username: str,
    price: str | int,
    placed_at: datetime | None = None,
    user_id: uuid.UUID | None = None,
) -> BidPlaced:
    """A bid as intake would queue it (received now unless told), by a bidder of its own."""
    return BidPlaced(
        bid_id=uuid.uuid4(),
        offer_id=uuid.UUID(offer_id),
        user_id=user_id or uuid.uuid4(),
        username=username,
        bid_price=Decimal(price),
        placed_at=placed_at or datetime.now(timezone.utc),
    )
