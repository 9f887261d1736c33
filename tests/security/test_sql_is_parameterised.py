"""Every SQL statement takes request data as parameters ($1, $2 ...), never by string formatting.

Reads the source of every service and the shared package: an f-string, `%` or `.format()` that
builds SQL may only interpolate module constants (column lists) and comprehension variables over
them. The known exceptions are listed with the reason each is safe.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.processes import ROOT

SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WHERE|VALUES|RETURNING|GRANT|REVOKE)\b")
# (file, name) -> why interpolating it is safe.
ALLOWED = {
    (
        "services/offers/offers/store.py",
        "sort",
    ): "sort.column comes from rules.SORT_COLUMNS, a fixed whitelist",
    ("services/offers/offers/store.py", "direction"): "either the literal ASC or DESC",
    (
        "services/bid-worker/bid_worker/store.py",
        "_qualified",
    ): "prefixes the BID_COLUMNS constant with a literal table alias",
    ("shared/auction_shared/migrate.py", "ident"): "the configured database name, quoted as an identifier",
    # db_roles.py: DDL takes no parameters. Role, table, column and database names are quoted as
    # identifiers (_ident, or quote_ident in the catalog query); privileges are constants of
    # TABLE_PRIVILEGES; passwords are quoted by PostgreSQL's own format('%L').
    ("shared/auction_shared/db_roles.py", "_ident"): "quotes an identifier",
    ("shared/auction_shared/db_roles.py", "role"): "quoted by _ident",
    ("shared/auction_shared/db_roles.py", "database"): "current_database(), quoted by _ident",
    ("shared/auction_shared/db_roles.py", "everyone"): "role names, each quoted by _ident",
    ("shared/auction_shared/db_roles.py", "columns"): "column names quoted by quote_ident",
    ("shared/auction_shared/db_roles.py", "table"): "a catalog table name, quoted by _ident",
    ("shared/auction_shared/db_roles.py", "privileges"): "a constant of TABLE_PRIVILEGES",
    ("shared/auction_shared/db_roles.py", "roles"): "role names, quoted by _ident",
    ("shared/auction_shared/db_roles.py", "service"): "a key of TABLE_PRIVILEGES",
}


def source_files() -> list[Path]:
    files = sorted((ROOT / "shared" / "auction_shared").glob("*.py"))
    for service in sorted((ROOT / "services").iterdir()):
        for package in service.iterdir():
            if package.is_dir() and (package / "__init__.py").exists() and package.name != "tests":
                files.extend(sorted(package.rglob("*.py")))
    return files


def _literal_text(node: ast.AST) -> str:
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _free_names(expr: ast.AST) -> set[str]:
    bound = {
        n.id
        for comp in ast.walk(expr)
        if isinstance(comp, ast.comprehension)
        for n in ast.walk(comp.target)
        if isinstance(n, ast.Name)
    }
    return {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} - bound


def unsafe_sql(source: str, relative: str) -> list[str]:
    """Every place in `source` where SQL text is built from something but constants."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and SQL.search(_literal_text(node)):
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    for name in _free_names(part.value):
                        if not name.isupper() and (relative, name) not in ALLOWED:
                            problems.append(f"{relative}:{node.lineno} interpolates {name!r} into SQL")
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
            and SQL.search(node.left.value)
        ):
            problems.append(f"{relative}:{node.lineno} builds SQL with %")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and SQL.search(node.func.value.value)
        ):
            problems.append(f"{relative}:{node.lineno} builds SQL with .format()")
    return problems


def test_no_sql_is_built_from_anything_but_constants() -> None:
    files = source_files()
    assert any(f.name == "store.py" for f in files) and len(files) > 20
    problems = [p for f in files for p in unsafe_sql(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


def test_the_check_catches_each_way_of_formatting_request_data_into_sql() -> None:
    bad = """
async def find(pool, username, offer_id, size):
    await pool.fetch(f"SELECT id FROM users WHERE username = '{username}'")
    await pool.fetch("SELECT * FROM offers WHERE id = '%s'" % offer_id)
    await pool.fetch("SELECT * FROM bids LIMIT {}".format(size))
    await pool.fetch(f"SELECT {', '.join(c for c in COLUMNS)} FROM offers WHERE id = $1", offer_id)
"""
    found = unsafe_sql(bad, "example.py")
    assert len(found) == 3, found
    assert "interpolates 'username'" in found[0]
