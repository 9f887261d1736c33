"""The request id a client may set, and the JSON line every log record becomes (no server needed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from auction_shared.observability import request_id
from auction_shared.observability.logs import setup_logging


@pytest.fixture(autouse=True)
def no_request_id_left_behind() -> Iterator[None]:
    token = request_id.REQUEST_ID.set(None)
    yield
    request_id.REQUEST_ID.reset(token)


@pytest.mark.parametrize("given", ["abc-123", "x" * 200, "trace:7/ok"])
def test_a_clients_request_id_is_kept(given: str) -> None:
    assert request_id.adopt({request_id.HEADER: given}) == given == request_id.current()


@pytest.mark.parametrize("given", ["", "x" * 201, "line\nbreak", 'quote"d', "ünï", None])
def test_a_request_id_that_could_forge_a_log_line_is_replaced(given: str | None) -> None:
    made = request_id.adopt({request_id.HEADER: given} if given is not None else {})
    assert made != given and request_id.acceptable(made) and len(made) == 32


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        structlog.reset_defaults()


def test_every_record_is_one_json_line_with_service_level_and_ids(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("bids", "INFO")
    request_id.REQUEST_ID.set("rid-1")
    logging.getLogger("some.library").warning("a %s with\na newline", "message")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bids").exception("failed")
    logging.getLogger("bids").debug("not at INFO")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    first, second = records
    assert first["event"] == "a message with\na newline" and first["level"] == "warning"
    assert {r["service"] for r in records} == {"bids"} and {r["request_id"] for r in records} == {"rid-1"}
    assert all("trace_id" in r and "time" in r for r in records)
    assert "ValueError: boom" in second["exception"]
