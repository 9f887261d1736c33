"""How live workers share the shards out (pure logic)."""

from __future__ import annotations

from collections import Counter

from bid_worker.sharing import Roster, owner


def test_every_shard_has_exactly_one_owner_among_the_members():
    members = ["w1", "w2", "w3"]
    owners = [owner(shard, members) for shard in range(64)]
    assert set(owners) <= set(members)
    assert all(count > 5 for count in Counter(owners).values()), "shards should spread over all members"


def test_owners_agree_whatever_order_the_members_are_listed_in():
    assert [owner(s, ["a", "b", "c"]) for s in range(16)] == [owner(s, ["c", "a", "b"]) for s in range(16)]


def test_a_leaving_member_moves_only_its_own_shards():
    before = {s: owner(s, ["a", "b", "c"]) for s in range(32)}
    after = {s: owner(s, ["a", "b"]) for s in range(32)}
    moved = {s for s in before if before[s] != after[s]}
    assert moved == {s for s in before if before[s] == "c"}


def test_the_roster_forgets_workers_not_heard_from_within_the_ttl():
    now = [100.0]
    roster = Roster("me", ttl=6.0, clock=lambda: now[0])
    roster.heard("other")
    assert roster.members() == ["me", "other"]
    now[0] += 7.0
    assert roster.members() == ["me"]
