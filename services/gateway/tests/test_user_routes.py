"""The private routes' bookkeeping as pure logic: a stand-in queue records the bind and unbind calls
(the broker's side is proved in test_stream_reconnect.py and tests/live/test_private_events.py)."""

from __future__ import annotations

import asyncio
import uuid

import aiormq

from auction_shared.events import private_key
from gateway import user_routes
from gateway.user_routes import UserRoutes


class StandInQueue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures = 0  # the next calls that fail, as on a dropped channel

    async def _call(self, what: str, key: str) -> None:
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
        self.calls.append((what, key))

    async def bind(self, exchange: object, key: str) -> None:
        await self._call("bind", key)

    async def unbind(self, exchange: object, key: str) -> None:
        await self._call("unbind", key)


def routes_for(sockets: dict[uuid.UUID, int]) -> tuple[UserRoutes, StandInQueue]:
    routes = UserRoutes(lambda user: sockets.get(user, 0), timeout=5.0)
    queue = StandInQueue()
    routes.attach(queue, object())  # type: ignore[arg-type]  # the stand-in has the two calls used
    return routes, queue


async def test_a_user_who_leaves_and_returns_during_a_call_ends_as_the_hub_said_last() -> None:
    user = uuid.uuid4()
    sockets = {user: 1}
    routes, queue = routes_for(sockets)
    queue.gate.clear()  # the broker is slow: the bind hangs
    routes.settle(user)
    await asyncio.sleep(0)
    sockets[user] = 0
    routes.settle(user)  # leaves
    sockets[user] = 1
    routes.settle(user)  # and comes back
    sockets[user] = 0
    routes.settle(user)  # and leaves for good
    queue.gate.set()
    assert not await routes.ready(user)
    key = private_key(user)
    assert queue.calls == [("bind", key), ("unbind", key)] and routes.bound == frozenset()


async def test_a_failed_bind_is_retried_until_it_holds_and_users_before_the_queue_are_bound_with_it(
    monkeypatch,
) -> None:
    monkeypatch.setattr(user_routes, "RETRY_SECONDS", 0.01)
    early, user = uuid.uuid4(), uuid.uuid4()
    sockets = {early: 1, user: 1}
    routes = UserRoutes(lambda u: sockets.get(u, 0), timeout=5.0)
    routes.settle(early)  # the feed has not subscribed yet
    await asyncio.sleep(0)
    queue = StandInQueue()
    queue.failures = 2
    routes.attach(queue, object())  # type: ignore[arg-type]
    routes.settle(user)
    assert await routes.ready(early) and await routes.ready(user)
    assert sorted(queue.calls) == sorted([("bind", private_key(early)), ("bind", private_key(user))])
    await routes.close()
