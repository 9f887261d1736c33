"""The cache of verified tokens (tokens.py) only ever saves work: it never accepts what a full check refuses."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import jwt
import pytest

from auction_shared import tokens
from auction_shared.problems import Problem

SECRET = "s" * 40
OTHER_SECRET = "o" * 40


@pytest.fixture(autouse=True)
def empty_cache():
    tokens._VERIFIED.clear()
    yield
    tokens._VERIFIED.clear()


def test_a_token_seen_before_is_not_decoded_again(monkeypatch):
    token = tokens.issue_token(SECRET, uuid.uuid4(), "alice", 60)
    calls = []
    real_decode = jwt.decode
    monkeypatch.setattr(tokens.jwt, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    first = tokens.verify_token(SECRET, token)
    second = tokens.verify_token(SECRET, token)
    assert first == second and first.username == "alice"
    assert len(calls) == 1


def test_a_cached_token_is_refused_once_it_expires(monkeypatch):
    token = tokens.issue_token(SECRET, uuid.uuid4(), "bob", 30)
    assert tokens.verify_token(SECRET, token).username == "bob"
    later = time.time() + 30 + tokens.LEEWAY_SECONDS + 1

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]  # a fixed clock in place of datetime.now
            return datetime.fromtimestamp(later, tz)

    # Both clocks move on: the cache's and PyJWT's.
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(Problem) as refused:
        tokens.verify_token(SECRET, token)
    assert refused.value.status == 401 and "expired" in refused.value.detail


def test_a_token_cached_under_one_secret_is_refused_under_another():
    token = tokens.issue_token(SECRET, uuid.uuid4(), "carol", 60)
    tokens.verify_token(SECRET, token)
    with pytest.raises(Problem) as refused:
        tokens.verify_token(OTHER_SECRET, token)
    assert refused.value.status == 401


def test_refused_tokens_are_not_remembered():
    token = tokens.issue_token(SECRET, uuid.uuid4(), "dave", 60)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(Problem):
            tokens.verify_token(SECRET, tampered)
    assert (SECRET, tampered) not in tokens._VERIFIED


def test_the_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS_KEPT", 5)
    for i in range(12):
        tokens.verify_token(SECRET, tokens.issue_token(SECRET, uuid.uuid4(), f"user{i}", 60))
    assert len(tokens._VERIFIED) <= 5
