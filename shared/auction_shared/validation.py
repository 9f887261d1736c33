"""One path from a request body or query to a typed model; every failure becomes a 400 problem."""

from __future__ import annotations

import math
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import orjson
import pydantic
from aiohttp import web
from pydantic import BeforeValidator

from .problems import Problem

MAX_BODY_BYTES = 64 * 1024
MONEY_LIMIT = Decimal(10) ** 12

Model = TypeVar("Model", bound=pydantic.BaseModel)


def _money(value: Any) -> Decimal:
    # Booleans are ints in Python and strings are not numbers in JSON: both are wrong types here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    try:
        # repr() is the shortest text that round-trips, i.e. what the client wrote.
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if amount <= 0:
        raise ValueError("must be greater than 0")
    if amount >= MONEY_LIMIT:
        raise ValueError("must be less than 1000000000000")
    if not isinstance(exponent := amount.as_tuple().exponent, int) or exponent < -2:
        raise ValueError("must have at most 2 decimal places")
    return amount.quantize(Decimal("0.01"))


Money = Annotated[Decimal, BeforeValidator(_money)]


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _message(error: Any) -> str:
    msg = str(error["msg"])
    # pydantic prefixes messages raised from our validators with "Value error, ".
    return msg.removeprefix("Value error, ")


def validation_problem(exc: pydantic.ValidationError) -> Problem:
    errors = [{"field": _field_name(e["loc"]), "message": _message(e)} for e in exc.errors()]
    detail = "; ".join(f"{e['field']} {e['message']}" for e in errors)
    return Problem(400, detail, errors=errors)


def parse_model(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_problem(exc) from None


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """Read a JSON object body and validate it against `model`, or raise a 400/413 problem."""
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise Problem(415, "Content-Type must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(413, "request body is larger than 64 KiB")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "request body is larger than 64 KiB")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(400, "body must be a JSON object")
    return parse_model(model, data)


def parse_uuid(raw: str, what: str) -> uuid.UUID:
    """An id that is not even well-formed names nothing: 404, as for an unknown id."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Problem(404, f"no {what} with id {raw[:64]!r}") from None


class StrictModel(pydantic.BaseModel):
    """Request bodies: no type coercion (a string is not a number), unknown fields ignored."""

    model_config = pydantic.ConfigDict(strict=True, extra="ignore", frozen=True)

    @pydantic.field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000: without this a valid-looking JSON string is a 500.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
