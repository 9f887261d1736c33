"""The auction's rules as pure functions (no I/O): the increment table and what a bid must offer.

The bid-worker applies them to decide every bid and every end; the JSON shapes use them to show
`min_next_bid`. Amounts are exact decimals with two places.
"""

from __future__ import annotations

from decimal import Decimal

# (lowest current price of the row, increment), highest row first.
INCREMENTS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("5000.00"), Decimal("100.00")),
    (Decimal("2500.00"), Decimal("50.00")),
    (Decimal("1000.00"), Decimal("25.00")),
    (Decimal("500.00"), Decimal("10.00")),
    (Decimal("250.00"), Decimal("5.00")),
    (Decimal("100.00"), Decimal("2.50")),
    (Decimal("25.00"), Decimal("1.00")),
    (Decimal("5.00"), Decimal("0.50")),
    (Decimal("1.00"), Decimal("0.25")),
    (Decimal("0.00"), Decimal("0.05")),
)


def increment(price: Decimal, fixed: Decimal | None = None) -> Decimal:
    """The least step above `price`: the offer's fixed `min_increment`, else the standard table."""
    if fixed is not None:
        return fixed
    for lowest, step in INCREMENTS:
        if price >= lowest:
            return step
    return INCREMENTS[-1][1]


def min_next_bid(
    starting_price: Decimal, price: Decimal, has_leader: bool, fixed: Decimal | None = None
) -> Decimal:
    """The least a new bid (from anyone but the leader) must offer: the starting price while nobody
    leads, else the current price plus the increment at that price."""
    return price + increment(price, fixed) if has_leader else starting_price
