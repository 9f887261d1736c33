"""The docs stay true to the code: who writes which table, and links that lead somewhere in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from auction_shared.db_roles import SERVICES, TABLE_PRIVILEGES

ROOT = Path(__file__).resolve().parents[1]
WRITES = ("INSERT", "UPDATE", "DELETE")


def documented_writers() -> dict[str, set[str]]:
    """table -> the services the ownership table of docs/ARCHITECTURE.md says write it."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("## Who writes what", 1)[1].split("\n## ", 1)[0]
    writers: dict[str, set[str]] = {}
    for row in re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, flags=re.M):
        table, who = row
        writers.setdefault(table, set()).update(s for s in SERVICES if re.search(rf"\b{s}\b", who))
    return writers


def test_the_ownership_table_names_exactly_the_roles_that_may_write() -> None:
    granted = {
        table: {service for service, privileges in grants.items() if any(w in privileges for w in WRITES)}
        for table, grants in TABLE_PRIVILEGES.items()
    }
    assert documented_writers() == granted


def test_every_relative_link_in_the_docs_and_readme_leads_to_a_file_of_the_repository() -> None:
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            path = (page.parent / target).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
