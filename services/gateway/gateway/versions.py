"""Per socket, the newest version of each offer it was sent, so it is never sent an older one after it.

Events about one offer reach a replica in the order the broker hands them over, which is not always
the order of their versions (a slow publisher, a redelivery, the seller's private copy next to the
public one). Each socket keeps the highest `version` it was sent per offer and the events it was sent
at that version: an older version is dropped, and so is a second copy of the same event at the same
version (a seller following their own offer gets `offerSold` once, not twice). `bidUpdated` may repeat
at one version: one bid can change two of a bidder's bids at once (the new one leads, the old one is
superseded).
"""

from __future__ import annotations

from collections import OrderedDict

# Offers one socket remembers (the most recently heard of): more than it may follow (hub.MAX_FOLLOWED)
# plus the offers its user bid on meanwhile, so the memory of a socket stays bounded.
TRACKED_OFFERS = 2048
REPEATABLE = frozenset({"bidUpdated"})


class SeenVersions:
    """The newest version of each offer one socket was sent, and which events it got at that version."""

    __slots__ = ("_limit", "_newest")

    def __init__(self, limit: int = TRACKED_OFFERS) -> None:
        self._limit = limit
        self._newest: OrderedDict[str, tuple[int, tuple[str, ...]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._newest)

    def admit(self, offer_id: str, version: int | None, event: str, *, remember: bool = True) -> bool:
        """True if `event` at `version` is news to this socket (remembered unless `remember` is
        False); False if the socket was already sent a newer version, or this very event."""
        if version is None:  # an event from before versions existed: nothing to order it by
            return True
        seen = self._newest.get(offer_id)
        if seen is None:
            events: tuple[str, ...] = (event,)
        elif version < seen[0]:
            return False
        elif version == seen[0]:
            if event in seen[1] and event not in REPEATABLE:
                return False
            events = seen[1] if event in seen[1] else (*seen[1], event)
        else:
            events = (event,)
        if not remember:
            return True
        self._newest[offer_id] = (version, events)
        self._newest.move_to_end(offer_id)
        if len(self._newest) > self._limit:
            self._newest.popitem(last=False)
        return True
