"""RFC 9457 problem+json errors: one exception type, one response shape, one middleware."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .jsonio import dumps
from .outages import BROKER_DOWN, DATABASE_DOWN

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class DependencyDown(Problem):
    """Postgres, RabbitMQ or an upstream service cannot be reached: 503, the client may retry."""

    def __init__(self, dependency: str, detail: str | None = None) -> None:
        super().__init__(
            503,
            detail or f"{dependency} is unavailable, retry later",
            headers={"Retry-After": "1"},
        )
        self.dependency = dependency


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return web.Response(body=dumps(body), status=status, headers=headers, content_type=PROBLEM_TYPE)


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="auction"'})


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Problem as exc:
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        detail = {
            404: f"no route for {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: "request body is larger than 64 KiB",
        }.get(exc.status, exc.reason)
        return problem_response(exc.status, detail, headers=headers)
    except web.RequestPayloadError:
        # The client sent a body that cannot be read: e.g. `Content-Encoding: gzip` on plain bytes.
        response = problem_response(400, "request body could not be read (check Content-Encoding)")
        # The rest of the stream cannot be trusted: say so, so the client does not reuse it.
        response.force_close()
        return response
    except DATABASE_DOWN as exc:
        log.warning("database unavailable on %s %s: %r", request.method, request.path, exc)
        return problem_response(503, "the database is unavailable, retry later", headers={"Retry-After": "1"})
    except BROKER_DOWN as exc:
        # Only a broker failure that is not an OSError gets here (a lost channel): the database
        # group above takes every socket error and timeout, whichever dependency raised it.
        log.warning("broker unavailable on %s %s: %r", request.method, request.path, exc)
        return problem_response(
            503, "the message broker is unavailable, retry later", headers={"Retry-After": "1"}
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "internal error")
