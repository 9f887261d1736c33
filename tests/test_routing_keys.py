"""Every routing key a publisher sends is owned by an event contract: seen on the wire, and in the code."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from auction_shared.config import Settings
from auction_shared.events import owners_of
from tests.reliability.tap import EventTap
from tests.support.api import Api
from tests.support.cleanup import delete_broker_names
from tests.support.environment import env_of
from tests.support.processes import Stack
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]

# The only code that may call `publish` on an exchange, and why each is not a way around the contracts.
PUBLISH_CALLERS = {
    # Publisher.send hands its own publish a contract's routing key, body and headers.
    ("shared/auction_shared/broker.py", "send"),
    ("shared/auction_shared/broker.py", "publish"),
    # The relay sends rows that only outbox.add_event writes, from a contract.
    ("shared/auction_shared/outbox.py", "_publish"),
    # A worker's heartbeat goes to the workers' fanout exchange, not to the events exchange.
    ("services/bid-worker/bid_worker/roster.py", "announce"),
    # A dead letter's copy goes to the dead-letter exchange with its reason, not to the events exchange.
    ("services/bid-worker/bid_worker/dead_letters.py", "send"),
}


class _PublishCalls(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.function = "<module>"
        self.found: set[tuple[str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "publish":
            self.found.add((self.module, self.function))
        self.generic_visit(node)


def publish_callers() -> set[tuple[str, str]]:
    """(module, innermost function) of every `.publish(` call in the shipped packages."""
    found: set[tuple[str, str]] = set()
    packages = [ROOT / "shared" / "auction_shared"]
    packages += [p for p in ROOT.glob("services/*/*") if (p / "__init__.py").exists() and p.name != "tests"]
    for package in packages:
        for path in package.rglob("*.py"):
            calls = _PublishCalls(str(path.relative_to(ROOT)))
            calls.visit(ast.parse(path.read_text()))
            found |= calls.found
    return found


def test_only_the_publisher_and_the_outbox_relay_publish_events() -> None:
    """Anything else on the events exchange would choose a routing key itself instead of a contract's."""
    assert publish_callers() <= PUBLISH_CALLERS


def test_a_key_no_contract_owns_is_recognised() -> None:
    assert owners_of("offer.created") and owners_of("bid.placed")
    assert not owners_of("offer.deleted") and not owners_of("bids.placed") and not owners_of("")


@pytest.fixture
async def own_settings(settings: Settings) -> AsyncIterator[Settings]:
    """The run's database, broker names of this test's own: only its stack publishes there."""
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}_keys")
    yield own
    await delete_broker_names(own)


@pytest.fixture
def own_stack(own_settings: Settings, log_dir: Path) -> Iterator[Stack]:
    stack = Stack(env_of(own_settings), log_dir)
    try:
        stack.start_services()
        stack.start_worker("keys-worker")
        yield stack
    finally:
        stack.stop()


async def test_every_routing_key_published_through_a_whole_auction_is_owned_by_a_contract(
    own_settings: Settings, own_stack: Stack
) -> None:
    async with EventTap(own_settings, "#") as tap, aiohttp.ClientSession() as http:
        api = Api(http, own_stack.gateway_url)
        seller, bidder, rival = await api.accounts(3, "keys")
        offer = await api.create_offer(seller, bid_price=10)
        status, first = await api.bid(bidder, offer["id"], 11)
        assert status == 202, first
        status, second = await api.bid(rival, offer["id"], 12)
        assert status == 202, second

        async def leading() -> bool:
            status, bid = await api.get(rival, f"/v1/bid/{second['id']}")
            return status == 200 and bid["status"] == "leading"

        await wait_until(leading, 30, "the rival's bid to lead")
        status, accepted = await api.put(seller, f"/v1/bid/{second['id']}")
        assert status == 200, accepted
        await wait_until(lambda: "offer.sold" in tap.routing_keys_seen, 30, "offer.sold on the wire")

    seen = set(tap.routing_keys_seen)
    assert {"offer.created", "bid.placed", "offer.updated", "offer.sold"} <= seen, seen
    assert [key for key in tap.routing_keys_seen if not owners_of(key)] == []
    assert tap.malformed == []
