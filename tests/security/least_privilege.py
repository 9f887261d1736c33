"""Fixtures' machinery for the least-privilege tests: each service's database role and broker user,
made for one test with names of its own and removed afterwards."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg

from auction_shared.broker_users import ManagementApi, apply_users, management_session
from auction_shared.config import Settings
from auction_shared.db_roles import apply_roles
from auction_shared.urls import with_login
from tests.support.cleanup import delete_broker_names

MANAGEMENT_URL = "http://127.0.0.1:15672"


@dataclass
class Accounts:
    """Settings of the run with one service's own database role and broker user."""

    base: Settings
    database_roles: dict[str, str]
    broker_users: dict[str, str]
    broker_passwords: dict[str, str]

    def of(self, service: str) -> Settings:
        settings = self.base
        if service in self.database_roles:
            settings = replace(
                settings, database_url=with_login(settings.database_url, self.database_roles[service])
            )
        if service in self.broker_users:
            settings = replace(
                settings,
                amqp_url=with_login(
                    settings.amqp_url, self.broker_users[service], self.broker_passwords[service]
                ),
            )
        return settings


@asynccontextmanager
async def service_accounts(settings: Settings) -> AsyncIterator[Accounts]:
    """Roles and users as the migrate step and broker-users make them, on this test's own names."""
    tag = uuid.uuid4().hex[:8]
    own = replace(settings, amqp_prefix=f"{settings.amqp_prefix}.{tag}")
    conn = await asyncpg.connect(settings.database_url)
    passwords = {s: secrets.token_hex(16) for s in ("offers", "bids", "gateway", "bid-worker")}
    roles: dict[str, str] = {}
    users: dict[str, str] = {}
    async with management_session("guest", "guest") as session:
        api = ManagementApi(session, MANAGEMENT_URL)
        try:
            roles = await apply_roles(conn, {}, prefix=f"t{tag}")
            users = await apply_users(api, own.amqp_prefix, passwords)
            yield Accounts(own, roles, users, passwords)
        finally:
            for user in users.values():
                await api.delete("users", user)
            for role in roles.values():
                await conn.execute(f'DROP OWNED BY "{role}"')
                await conn.execute(f'DROP ROLE "{role}"')
            await conn.close()
            await delete_broker_names(own)
