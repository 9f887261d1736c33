"""The one backoff: doubling pauses up to a ceiling, reset after success, and when `retry` gives up."""

from __future__ import annotations

import asyncio

import pytest

from auction_shared.retry import Backoff, retry


class Flaky:
    """Fails with `error` the first `failures` times it is awaited, then answers "done"."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


async def test_pauses_double_up_to_the_ceiling_until_the_attempt_succeeds() -> None:
    pauses: list[float] = []
    attempt = Flaky(5, ConnectionError("refused"))
    result = await retry(
        attempt,
        on=(OSError,),
        backoff=Backoff(0.001, 0.004),
        waiting=lambda exc, seconds: pauses.append(seconds),
    )
    assert result == "done" and attempt.calls == 6
    assert pauses == [0.001, 0.002, 0.004, 0.004, 0.004]


async def test_the_last_failure_is_raised_after_the_allowed_attempts() -> None:
    attempt = Flaky(10, TimeoutError("no answer"))
    with pytest.raises(TimeoutError):
        await retry(attempt, on=(OSError,), backoff=Backoff(0.001, 0.001), attempts=3)
    assert attempt.calls == 3


async def test_give_up_raises_at_once_and_other_errors_are_never_retried() -> None:
    stopping = Flaky(10, ConnectionError("lost"))
    with pytest.raises(ConnectionError):
        await retry(stopping, on=(OSError,), backoff=Backoff(0.001, 0.001), give_up=lambda: True)
    assert stopping.calls == 1
    bug = Flaky(10, KeyError("a bug, not an outage"))
    with pytest.raises(KeyError):
        await retry(bug, on=(OSError,), backoff=Backoff(0.001, 0.001))
    assert bug.calls == 1


async def test_a_reset_starts_the_pauses_over() -> None:
    backoff = Backoff(0.001, 1.0)
    await backoff.wait()
    await backoff.wait()
    assert backoff.delay == 0.004
    backoff.reset()
    assert backoff.delay == 0.001


async def test_a_pause_ends_early_when_told_to_stop() -> None:
    stop = asyncio.Event()
    stop.set()
    backoff = Backoff(600.0, 600.0)
    assert await backoff.wait(stop) is True
    assert await Backoff(0.001, 0.001).wait(asyncio.Event()) is False
