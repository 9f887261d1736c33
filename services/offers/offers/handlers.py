"""Handlers of the offers service: parse, call the store, answer."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints
from yarl import URL

from auction_shared.db import DB_POOL
from auction_shared.events import OfferCreated
from auction_shared.health import broker_connected, database_answers, health_handler
from auction_shared.jsonio import json_response
from auction_shared.outbox import RELAY
from auction_shared.problems import Problem
from auction_shared.shapes import offer_shape
from auction_shared.validation import Money, StrictModel, parse_body, parse_uuid
from auction_shared.web import identity, page_params

from . import store
from .rules import hard_end, parse_filters, parse_sort, schedule, term_errors

MAX_LIFETIME = 10 * 365 * 24 * 3600
MAX_SOFT_CLOSE = 3600
MAX_EXTENSION = 24 * 3600
# Lax datetime parsing would also take a number or "1700000000" as a Unix time: only text that starts
# like an RFC 3339 date-time goes on to the parser.
_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _photo_url(value: str) -> str:
    if value == "":
        return value
    try:
        url = URL(value)
        # `host` decodes IDNA lazily, so a bad punycode label fails here rather than in URL().
        usable = url.scheme in ("http", "https") and bool(url.host)
    except ValueError:
        usable = False
    if not usable:
        raise ValueError("must be an http(s) URL or empty")
    return value


def _rfc3339_text(value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and _RFC3339_START.match(value)):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-27T10:00:00+00:00")
    return value


class NewOffer(StrictModel):
    bid_price: Money
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    lifetime: Annotated[int, Field(ge=0, le=MAX_LIFETIME)] = 0
    photo_url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_photo_url)] = ""
    # RFC 3339 with an explicit offset; strict mode still parses it from a JSON string.
    go_live: Annotated[AwareDatetime | None, Field(strict=False), BeforeValidator(_rfc3339_text)] = None
    # The auction's terms (docs/API.md, "Auction rules"); the bounds the database checks too.
    reserve_price: Money | None = None
    min_increment: Money | None = None
    soft_close_seconds: Annotated[int, Field(ge=0, le=MAX_SOFT_CLOSE)] = 0
    max_extension_seconds: Annotated[int, Field(ge=0, le=MAX_EXTENSION)] = 3600


async def create_offer(request: web.Request) -> web.Response:
    who = identity(request)
    body = await parse_body(request, NewOffer)
    errors = term_errors(body.bid_price, body.reserve_price, body.lifetime, body.soft_close_seconds)
    if not body.title.strip():
        errors.insert(0, {"field": "title", "message": "must not be blank"})
    if errors:
        raise Problem(400, "; ".join(f"{e['field']} {e['message']}" for e in errors), errors=errors)
    go_live, ends_at = schedule(datetime.now(timezone.utc), body.go_live, body.lifetime)
    pool = request.app[DB_POOL]
    async with pool.acquire() as conn, conn.transaction():
        row = await store.insert_offer(
            conn,
            title=body.title,
            photo_url=body.photo_url,
            price=body.bid_price,
            go_live=go_live,
            lifetime=body.lifetime,
            ends_at=ends_at,
            user_id=who.user_id,
            username=who.username,
            terms=store.Terms(
                reserve_price=body.reserve_price,
                min_increment=body.min_increment,
                soft_close_seconds=body.soft_close_seconds,
                max_extension_seconds=body.max_extension_seconds,
                hard_ends_at=hard_end(ends_at, body.soft_close_seconds, body.max_extension_seconds),
            ),
        )
        await request.app[RELAY].add(conn, OfferCreated(offer_shape(row)))
    request.app[RELAY].wake()
    return json_response(offer_shape(row, who.user_id), status=201)


async def list_offers(request: web.Request) -> web.Response:
    who = identity(request)
    page, size = page_params(request)
    sort = parse_sort(request.query.get("sortKey", request.query.get("sortkey")))
    filters = parse_filters(request.query)
    rows, total = await store.list_offers(request.app[DB_POOL], sort, filters, page, size)
    return json_response([offer_shape(r, who.user_id) for r in rows], headers={"X-Total-Count": str(total)})


async def get_offer(request: web.Request) -> web.Response:
    who = identity(request)
    offer_id = parse_uuid(request.match_info["offer_id"], "offer")
    row = await store.get_offer(request.app[DB_POOL], offer_id)
    if row is None:
        raise Problem(404, f"no offer with id {offer_id}")
    return json_response(offer_shape(row, who.user_id))


health = health_handler({"postgres": database_answers, "rabbitmq": broker_connected})
