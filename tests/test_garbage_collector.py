"""The services' garbage-collector settings: set once started, startup objects out of every walk."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from auction_shared.web import GC_THRESHOLDS, settle_garbage_collector

pytestmark = pytest.mark.unit


class Node:
    """A container object the collector tracks."""

    def __init__(self) -> None:
        self.peer: Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_raises_the_thresholds_and_freezes_what_exists(restored_collector: None) -> None:
    built_while_starting = Node()
    settle_garbage_collector()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(o is built_while_starting for o in gc.get_objects()), "frozen: in no generation"


def test_a_cycle_made_after_startup_is_still_collected(restored_collector: None) -> None:
    settle_garbage_collector()
    first, second = Node(), Node()
    first.peer, second.peer = second, first
    gone = weakref.ref(first)
    del first, second
    assert gone() is not None, "a cycle outlives its names until a collection"
    gc.collect()
    assert gone() is None
