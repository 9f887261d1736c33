"""`make env`: write .env for docker compose from .env.example, with a new random value for every
GENERATED line. Never overwrites an existing .env (its passwords are in the data volumes by then).

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "GENERATED-by-make-env"


def filled(example: str) -> str:
    """The example's text with each GENERATED value replaced by 32 random bytes in hex."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == MARK:
            line = f"{name}={secrets.token_hex(32)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(root: Path = ROOT) -> int:
    target = root / ".env"
    if target.exists():
        print(f"{target} exists; leaving it as it is (delete it, and the volumes, to start afresh)")
        return 0
    target.write_text(filled((root / ".env.example").read_text()))
    target.chmod(0o600)
    print(f"wrote {target} with new random secrets; now: docker compose up --build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
