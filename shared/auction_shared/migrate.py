"""Create the database if it is missing and apply the numbered SQL migrations in deploy/migrations."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from .config import Settings
from .db import describe
from .db_roles import RoleSettings, apply_roles
from .outages import DATABASE_REFUSED

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "migrations"
# Any constant works; it only has to be the same for every process that migrates.
_LOCK_ID = 0x_A0C7_10_4E


class MigrationFailed(RuntimeError):
    """A migration refused to apply (its own check, or the database's); nothing of it was kept."""

    def __init__(self, name: str, error: asyncpg.PostgresError) -> None:
        # asyncpg's message carries the migration's HINT, if it gave one.
        super().__init__(f"migration {name} failed: {error}")


def admin_url(url: str) -> tuple[str, str]:
    """The URL of the server's `postgres` database, and the name of the database `url` names."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), name


async def create_database(url: str) -> bool:
    """Create the database named in `url` unless it exists. Returns True if it was created."""
    admin, name = admin_url(url)
    conn = await asyncpg.connect(admin)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        ident = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {ident}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    files = []
    for path in sorted(directory.glob("*.sql")):
        number = int(path.name.split("_", 1)[0])
        files.append((number, path))
    return files


async def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the migrations not applied yet, each in its own transaction. Safe to re-run."""
    conn = await asyncpg.connect(url)
    applied: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for number, path in migration_files(directory):
            if number in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        number,
                        path.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationFailed(path.name, exc) from exc
            applied.append(number)
            log.info("applied migration %s", path.name)
    finally:
        await conn.close()
    return applied


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    where = describe(settings.database_url)
    try:
        if await create_database(settings.database_url):
            print(f"created database {where}")
        applied = await migrate(settings.database_url)
        roles = RoleSettings.from_env()
        conn = await asyncpg.connect(settings.database_url)
        try:
            # Under the migrations' lock: two migrate runs granting at once would trip on each other.
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
            await apply_roles(conn, roles.passwords, roles.prefix)
        finally:
            await conn.close()
    except asyncpg.InsufficientPrivilegeError as exc:
        print(
            f"cannot set up the services' database roles on {where}: {exc}\n"
            "the migrating role must own the database and may create roles (CREATEROLE)",
            file=sys.stderr,
        )
        return 1
    except MigrationFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    except DATABASE_REFUSED as exc:
        print(
            f"cannot reach PostgreSQL at {where}: {exc}\n"
            "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            file=sys.stderr,
        )
        return 1
    print(
        f"database {where} is at migration {max((n for n, _ in migration_files()), default=0)}"
        f" ({len(applied)} applied now); service roles {roles.prefix}_* granted their tables"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
