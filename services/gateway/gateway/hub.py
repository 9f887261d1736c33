"""The hub: every WebSocket watcher of this replica, each user's sockets, and the offers each one follows.

The hub never awaits a socket: delivering a frame queues it to each watcher (watcher.py), and a
watcher that cannot take it leaves. Frames about one offer carry its version; each watcher drops a
version older than one it was already sent (versions.py), so whichever way the events arrive, no
socket sees an offer go back in time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import NamedTuple

from aiohttp import web

from auction_shared.observability.metrics import WS_FRAMES, WS_SOCKETS

from .watcher import Watcher

# One watcher may follow this many offers at once; the hub's memory per watcher stays bounded.
MAX_FOLLOWED = 1000


class About(NamedTuple):
    """What a frame is about: which offer, at which version, as which event."""

    offer_id: str
    version: int | None
    event: str


class Hub:
    """Connected and authenticated watchers, per user their sockets, per offer id its followers."""

    def __init__(self) -> None:
        self._connected: set[Watcher] = set()
        self._watchers: set[Watcher] = set()  # authenticated: they receive offerCreated
        self._by_user: dict[uuid.UUID, set[Watcher]] = {}
        self._followers: dict[str, set[Watcher]] = {}
        # Called with a user id when its first socket joins or its last one leaves (the private
        # routes of this replica follow it); set once by whoever owns the routes.
        self.on_user_change: Callable[[uuid.UUID], None] = lambda _user: None

    def __len__(self) -> int:
        return len(self._watchers)

    @property
    def connected(self) -> int:
        """Sockets open on this replica, authenticated or not."""
        return len(self._connected)

    def connect(self, watcher: Watcher) -> None:
        self._connected.add(watcher)
        WS_SOCKETS.set(len(self._connected))

    def disconnect(self, watcher: Watcher) -> None:
        self.leave(watcher)
        self._connected.discard(watcher)
        WS_SOCKETS.set(len(self._connected))

    def join(self, watcher: Watcher) -> None:
        """An authenticated watcher (its user_id set) starts receiving events."""
        assert watcher.user_id is not None
        self._watchers.add(watcher)
        sockets = self._by_user.setdefault(watcher.user_id, set())
        sockets.add(watcher)
        if len(sockets) == 1:
            self.on_user_change(watcher.user_id)

    def leave(self, watcher: Watcher) -> None:
        """The watcher receives nothing more from the hub (it may still be connected)."""
        self._watchers.discard(watcher)
        user_id = watcher.user_id
        sockets = self._by_user.get(user_id) if user_id is not None else None
        if user_id is not None and sockets is not None and watcher in sockets:
            sockets.discard(watcher)
            if not sockets:
                del self._by_user[user_id]
                self.on_user_change(user_id)
        for offer_id in watcher.following:
            followers = self._followers.get(offer_id)
            if followers is not None:
                followers.discard(watcher)
                if not followers:
                    del self._followers[offer_id]
        watcher.following.clear()

    def sockets_of(self, user_id: uuid.UUID) -> int:
        """How many authenticated sockets the user has on this replica."""
        return len(self._by_user.get(user_id, ()))

    def follow(self, watcher: Watcher, offer_id: str) -> bool:
        """False if the watcher already follows as many offers as it may."""
        if offer_id not in watcher.following and len(watcher.following) >= MAX_FOLLOWED:
            return False
        watcher.following.add(offer_id)
        self._followers.setdefault(offer_id, set()).add(watcher)
        return True

    def unfollow(self, watcher: Watcher, offer_id: str) -> bool:
        """False if the watcher did not follow the offer."""
        if offer_id not in watcher.following:
            return False
        watcher.following.discard(offer_id)
        followers = self._followers.get(offer_id)
        if followers is not None:
            followers.discard(watcher)
            if not followers:
                del self._followers[offer_id]
        return True

    def is_followed(self, offer_id: str) -> bool:
        return offer_id in self._followers

    def broadcast(self, frame: bytes, about: About | None = None) -> int:
        """Queue `frame` to every authenticated watcher; return how many took it.

        A new offer goes to every socket: remembering its version in each would cost memory per
        socket per offer, so it is only checked against what a socket already holds."""
        return self._deliver(self._watchers, frame, about, remember=False)

    def to_followers(self, offer_id: str, frame: bytes, about: About | None = None) -> int:
        """Queue `frame` to the watchers following `offer_id`; return how many took it."""
        followers = self._followers.get(offer_id)
        return self._deliver(followers, frame, about) if followers else 0

    def to_user(self, user_id: uuid.UUID, frame: bytes, about: About | None = None) -> int:
        """Queue a private `frame` to every socket of `user_id` on this replica, subscribed or not."""
        sockets = self._by_user.get(user_id)
        return self._deliver(sockets, frame, about) if sockets else 0

    def _deliver(
        self, watchers: Iterable[Watcher], frame: bytes, about: About | None, *, remember: bool = True
    ) -> int:
        # send() never awaits and never changes these sets; laggards leave after the loop.
        delivered = 0
        laggards = []
        for watcher in watchers:
            if about is not None and not watcher.seen.admit(*about, remember=remember):
                continue
            if watcher.send(frame):
                delivered += 1
            else:
                laggards.append(watcher)
        for watcher in laggards:
            self.leave(watcher)
        WS_FRAMES.inc(delivered)
        return delivered

    def close_all(self, code: int, reason: str) -> None:
        """Server shutdown: every connected watcher gets a close frame after what it was sent."""
        for watcher in list(self._connected):
            watcher.close_after_sent(code, reason)


HUB = web.AppKey("hub", Hub)
