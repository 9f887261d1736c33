"""The protocol of one `/v1/stream` socket (docs/API.md, Live updates): authenticate, the token on every
message, get_offers, subscribe and unsubscribe, and the checks each message passes first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSCloseCode, web

from auction_shared.jsonio import loads
from auction_shared.problems import DependencyDown, Problem
from auction_shared.tokens import Identity, verify_token
from auction_shared.web import SETTINGS

from . import frames
from .hub import Hub
from .offer_feed import FEED
from .proxy import OFFERS, fetch
from .user_check import USERS
from .watcher import Watcher

CLOSE_UNAUTHORIZED = 4401  # no, a bad, an expired or another user's token, or none in time
CLOSE_REFUSED = WSCloseCode.POLICY_VIOLATION  # 1008: over a cap of sockets


Handler = Callable[["StreamSession", dict[str, Any], str], Awaitable[None]]


class StreamSession:
    """The protocol state of one socket: who it is (once authenticated) and what it asked for."""

    def __init__(self, app: web.Application, hub: Hub, watcher: Watcher) -> None:
        self._app = app
        self._secret = app[SETTINGS].jwt_secret
        self._hub = hub
        self._watcher = watcher
        self._who: Identity | None = None
        # A socket that says nothing must not hold a slot for ever: authenticate in time or go.
        self._auth_deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            app[SETTINGS].ws_auth_timeout_seconds, self._too_late
        )

    def stop(self) -> None:
        if self._auth_deadline is not None:
            self._auth_deadline.cancel()

    # --- replies -------------------------------------------------------------------------------

    def _error(self, message: str) -> None:
        self._watcher.send(frames.error_frame(message))

    def _reject(self, message: str) -> None:
        """An error, then close 4401 once it is written."""
        self._error(message)
        self._watcher.close_after_sent(CLOSE_UNAUTHORIZED, "unauthorized")

    def _expired(self) -> None:
        self._reject("token has expired")

    def _too_late(self) -> None:
        self._auth_deadline = None
        if self._who is None:
            timeout = self._app[SETTINGS].ws_auth_timeout_seconds
            self._reject(f"authenticate within {timeout:g} seconds of connecting")

    # --- incoming ------------------------------------------------------------------------------

    def on_binary(self) -> None:
        if self._who is None:
            self._reject("the first message must be authenticate")
        else:
            self._error("messages must be JSON text frames")

    async def on_text(self, text: str) -> None:
        try:
            message = loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            if self._who is None:
                self._reject("the first message must be authenticate (a JSON object)")
            else:
                self._error("a message must be a JSON object with event and token")
            return
        event = message.get("event")
        if self._who is None and event != "authenticate":
            self._reject("the first message must be authenticate")
            return
        token = message.get("token")
        if not isinstance(token, str) or not token:
            self._reject("every message must carry the token")
            return
        try:
            who = verify_token(self._secret, token)
        except Problem as exc:
            self._reject(exc.detail)
            return
        if self._who is not None and who.user_id != self._who.user_id:
            self._reject("the token belongs to another user")
            return
        if not await self._app[USERS].exists(self._app, who.user_id, token):
            self._reject("the token's user no longer exists")
            return
        if event == "authenticate":
            await self._authenticate(who)
            return
        handler = HANDLERS.get(event) if isinstance(event, str) else None
        if handler is None:
            self._error(
                f"unknown event {event[:64]!r}" if isinstance(event, str) else "event must be a string"
            )
            return
        # A newer token of the same user keeps the socket open past the first token's expiry.
        self._watcher.expire_at(who.expires_at, self._expired)
        await handler(self, message, token)

    # --- events --------------------------------------------------------------------------------

    async def _authenticate(self, who: Identity) -> None:
        if self._who is None:
            if self._watcher.closing:  # the deadline passed while the user was being checked
                return
            cap = self._app[SETTINGS].ws_max_sockets_per_user
            if self._hub.sockets_of(who.user_id) >= cap:
                self._error(f"too many sockets for this user (at most {cap}): close one first")
                self._watcher.close_after_sent(CLOSE_REFUSED, "too many sockets")
                return
            self.stop()
            self._who = who
            self._watcher.user_id, self._watcher.username = who.user_id, who.username
            self._hub.join(self._watcher)
            # `authenticated` promises the private events: wait (bounded) for this user's binding.
            await self._app[FEED].routes.ready(who.user_id)
        self._who = who
        self._watcher.expire_at(who.expires_at, self._expired)
        self._watcher.send(
            frames.event_frame(
                frames.AUTHENTICATED, {"username": who.username, "expires_at": _rfc3339(who.expires_at)}
            )
        )

    async def get_offers(self, message: dict[str, Any], token: str) -> None:
        query: dict[str, str] = {}
        for field, param in (("page", "page"), ("size", "size"), ("sortkey", "sortKey")):
            value = message.get(field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self._error(f"{field} must be {'a string' if field == 'sortkey' else 'an integer'}")
                return
            query[param] = str(value)
        path = "/v1/offer" + ("?" + urlencode(query) if query else "")
        reply = await self._fetch(path, token)
        if reply is not None:
            self._watcher.send(frames.raw_event_frame(frames.OFFER_PAGE, reply))

    async def subscribe(self, message: dict[str, Any], token: str) -> None:
        offer_id = self._offer_id(message)
        if offer_id is None:
            return
        if offer_id in self._watcher.following:
            self._watcher.send(frames.event_frame(frames.SUBSCRIBED, {"offer_id": offer_id}))
            return
        # Follow first, then check the offer exists: an update between the two is not missed.
        if not self._hub.follow(self._watcher, offer_id):
            self._error("too many subscriptions: unsubscribe from an offer first")
            return
        if await self._fetch(f"/v1/offer/{offer_id}", token) is None:
            self._hub.unfollow(self._watcher, offer_id)
            return
        self._watcher.send(frames.event_frame(frames.SUBSCRIBED, {"offer_id": offer_id}))

    async def unsubscribe(self, message: dict[str, Any], token: str) -> None:
        offer_id = self._offer_id(message)
        if offer_id is None:
            return
        if not self._hub.unfollow(self._watcher, offer_id):
            self._error(f"not subscribed to offer {offer_id}")
            return
        self._watcher.send(frames.event_frame(frames.UNSUBSCRIBED, {"offer_id": offer_id}))

    # --- plumbing ------------------------------------------------------------------------------

    def _offer_id(self, message: dict[str, Any]) -> str | None:
        raw = message.get("offer_id")
        if isinstance(raw, str) and len(raw) <= 64:
            try:
                return str(uuid.UUID(raw))
            except ValueError:
                pass
        self._error(f"offer_id must be an offer id, got {str(raw)[:64]!r}")
        return None

    async def _fetch(self, path_qs: str, token: str) -> bytes | None:
        """The upstream's 200 body, or None after sending the client an error saying why not."""
        try:
            status, body = await fetch(self._app, OFFERS, path_qs, token)
        except DependencyDown:
            self._error("the offers service is unavailable, retry later")
            return None
        if status == 200:
            return body
        detail = None
        try:
            problem = loads(body)
            detail = problem.get("detail") if isinstance(problem, dict) else None
        except ValueError:
            pass
        if status >= 500 or not isinstance(detail, str):
            self._error("the offers service is unavailable, retry later")
        else:
            self._error(detail)
        return None


def _rfc3339(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat()


# Every event but `authenticate`, which on_text handles itself (it changes who the socket is).
HANDLERS: dict[str, Handler] = {
    "get_offers": StreamSession.get_offers,
    "get_offer": StreamSession.get_offers,
    "subscribe": StreamSession.subscribe,
    "unsubscribe": StreamSession.unsubscribe,
}
