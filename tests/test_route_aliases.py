"""Offer and bid routes answer in the singular and the plural; no other route gets an alias."""

from __future__ import annotations

import pytest

from auction_shared.route_aliases import spellings


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/offer", ("/v1/offer", "/v1/offers")),
        ("/v1/offer/{offer_id}", ("/v1/offer/{offer_id}", "/v1/offers/{offer_id}")),
        ("/v1/offer/{offer_id}/bids", ("/v1/offer/{offer_id}/bids", "/v1/offers/{offer_id}/bids")),
        ("/v1/bid", ("/v1/bid", "/v1/bids")),
        ("/v1/bid/{bid_id}", ("/v1/bid/{bid_id}", "/v1/bids/{bid_id}")),
        ("/v1/signup", ("/v1/signup",)),
        ("/v1/stream", ("/v1/stream",)),
        ("/health", ("/health",)),
        ("/v1/offers", ("/v1/offers",)),
        ("/v2/offer", ("/v2/offer",)),
    ],
)
def test_spellings(path: str, expected: tuple[str, ...]) -> None:
    assert spellings(path) == expected
