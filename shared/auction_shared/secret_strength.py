"""Refuses signing secrets that anyone could guess: short, shipped placeholders, or low entropy."""

from __future__ import annotations

import math
from collections import Counter

MIN_LENGTH = 32
# Estimated from the characters' spread (Shannon entropy times length): `openssl rand -hex 32` gives
# about 230, a word repeated or a keyboard walk far less.
MIN_BITS = 128
# Words of placeholders (ours in .env.example, docker-compose.yml and the k8s example, and the usual
# ones elsewhere). Long enough that a random secret spells one about once in 10^8 (4 letters in any
# case would hit one base64 secret in 10^4).
PLACEHOLDER_WORDS = (
    "replace",
    "generated",
    "placeholder",
    "change",
    "example",
    "insecure",
    "secret",
    "default",
    "password",
    "your-",
    "your_",
    "xxxxxx",
)


def estimated_bits(value: str) -> float:
    counts = Counter(value)
    return max(0.0, -sum(n * math.log2(n / len(value)) for n in counts.values()))


def repeats_itself(value: str) -> bool:
    """A pattern repeated (`0123456789abcdef` twice) spreads its characters well but is one guess:
    in a random string nearly every run of three characters is new."""
    runs = [value[i : i + 3] for i in range(len(value) - 2)]
    return len(set(runs)) < 0.75 * len(runs)


def weakness(value: str) -> str | None:
    """Why `value` must not sign tokens, or None if it may."""
    lowered = value.lower()
    word = next((w for w in PLACEHOLDER_WORDS if w in lowered), None)
    if word is not None:
        return f"it looks like a placeholder (it contains {word!r})"
    if len(value) < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    if repeats_itself(value):
        return "it repeats a pattern"
    if estimated_bits(value) < MIN_BITS:
        return f"it is too predictable (about {estimated_bits(value):.0f} bits, at least {MIN_BITS} needed)"
    return None
