"""A PostgreSQL role per service with only the tables and privileges it uses, set by the migrate step.

The services never own a table and cannot create one (no DDL at run time); the migrations run as
the role that owns the schema. `TABLE_PRIVILEGES` is the one place that says who may do what: a
migration that adds a table adds its line here (a test fails until it does), and every migrate run
applies the whole table again, revoking whatever it does not list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from .config import read, setting

# One line per table: service -> privileges. "SELECT (id)" is a column privilege: offers and bids
# only check that a token's user still exists (known_users.py), they never read a password hash.
# SELECT ... FOR UPDATE needs UPDATE, which is why readers that lock hold it.
TABLE_PRIVILEGES: dict[str, dict[str, str]] = {
    "schema_migrations": {},
    "users": {"auth": "SELECT, INSERT", "offers": "SELECT (id)", "bids": "SELECT (id)"},
    "login_attempts": {"auth": "SELECT, INSERT, UPDATE, DELETE"},
    "offers": {"offers": "SELECT, INSERT, UPDATE", "bids": "SELECT", "bid-worker": "SELECT, UPDATE"},
    # bids inserts each bid's pending row before publishing it, and deletes it again if the publish
    # fails while it is still pending; an Idempotency-Key past its retention is taken over
    # (INSERT ... ON CONFLICT DO UPDATE) or deleted.
    "bids": {
        "offers": "SELECT, UPDATE",
        "bids": "SELECT, INSERT, DELETE",
        "bid-worker": "SELECT, INSERT, UPDATE",
    },
    "bid_requests": {"bids": "SELECT, INSERT, UPDATE, DELETE"},
    # The bid-worker writes its events here in the batch's transaction and runs a relay too.
    "outbox": {"offers": "SELECT, INSERT, UPDATE, DELETE", "bid-worker": "SELECT, INSERT, UPDATE, DELETE"},
    # A relay sets aside a row it can never publish.
    "outbox_dead": {"offers": "INSERT", "bid-worker": "INSERT"},
}

# The services that use the database (the gateway does not: it gets no database URL).
SERVICES = ("auth", "offers", "bids", "bid-worker")


@dataclass(frozen=True)
class RoleSettings:
    """What the migrate step reads to set the services' roles up."""

    # Roles are per PostgreSQL server, not per database: two deployments on one server differ here.
    prefix: str = setting("DB_ROLE_PREFIX", "auction")
    # Each service's password, set on its role when given (compose and Kubernetes give them; `make
    # run` generates them per run). Unset: the role keeps the password it has.
    auth_password: str | None = setting("AUTH_DATABASE_PASSWORD", None, secret=True)
    offers_password: str | None = setting("OFFERS_DATABASE_PASSWORD", None, secret=True)
    bids_password: str | None = setting("BIDS_DATABASE_PASSWORD", None, secret=True)
    bid_worker_password: str | None = setting("BID_WORKER_DATABASE_PASSWORD", None, secret=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RoleSettings:
        return read(cls, env)

    @property
    def passwords(self) -> dict[str, str | None]:
        return {
            "auth": self.auth_password,
            "offers": self.offers_password,
            "bids": self.bids_password,
            "bid-worker": self.bid_worker_password,
        }


def role_name(service: str, prefix: str = "auction") -> str:
    return f"{prefix}_{service.replace('-', '_')}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str | None) -> None:
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
        try:
            await conn.execute(
                f"CREATE ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
            )
        except asyncpg.DuplicateObjectError:  # another migrate created it meanwhile
            pass
    if password:
        # DDL takes no parameters: let PostgreSQL quote the password itself.
        statement = await conn.fetchval(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
        )
        await conn.execute(statement)


async def apply_roles(
    conn: asyncpg.Connection, passwords: Mapping[str, str | None], prefix: str = "auction"
) -> dict[str, str]:
    """Create each service's role if missing (setting the password given for it, if any), then grant
    it exactly `TABLE_PRIVILEGES` in the connected database. Returns service -> role."""
    roles = {service: role_name(service, prefix) for service in SERVICES}
    tables = {
        r["relname"]: r["columns"]
        for r in await conn.fetch(
            "SELECT c.relname, array_agg(quote_ident(a.attname)) AS columns FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') GROUP BY c.relname"
        )
    }
    unlisted = set(tables) - set(TABLE_PRIVILEGES)
    if unlisted:
        raise RuntimeError(
            f"tables {sorted(unlisted)} have no line in TABLE_PRIVILEGES (shared/auction_shared/db_roles.py)"
        )
    for service, role in roles.items():
        await _ensure_role(conn, role, passwords.get(service))
    database = _ident(await conn.fetchval("SELECT current_database()"))
    everyone = ", ".join(_ident(r) for r in roles.values())
    async with conn.transaction():
        # Nobody but these roles and the owner connects or makes temporary tables; nobody creates
        # anything in the schema (PostgreSQL 15 revokes that already; older ones did not).
        await conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT ON DATABASE {database} TO {everyone}")
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {everyone}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {everyone}")
        await conn.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {everyone}")
        for table, columns in tables.items():
            await conn.execute(f"REVOKE ALL ({', '.join(columns)}) ON {_ident(table)} FROM {everyone}")
            for service, privileges in TABLE_PRIVILEGES[table].items():
                await conn.execute(f"GRANT {privileges} ON {_ident(table)} TO {_ident(roles[service])}")
    return roles
