"""`make run`'s accounts: each service logs in to PostgreSQL and RabbitMQ as itself, never as the
administrator `make run` was given (DATABASE_URL, AMQP_URL), with passwords made up for this run."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from auction_shared import broker_users, db_roles
from auction_shared.broker_users import BrokerUserSettings, ManagementApi, apply_users, management_session
from auction_shared.config import Settings, read
from auction_shared.outages import BROKER_ADMIN_FAILED
from auction_shared.urls import with_login

# `python -m <module>` -> the service whose role and user it runs as.
SERVICE_OF_MODULE = {
    "auth": "auth",
    "offers": "offers",
    "bids": "bids",
    "gateway": "gateway",
    "bid_worker": "bid-worker",
}


def password_variable(service: str, kind: str) -> str:
    """AUTH_DATABASE_PASSWORD, BID_WORKER_AMQP_PASSWORD, …: what the migrate step and broker-users read."""
    return f"{service.upper().replace('-', '_')}_{kind}_PASSWORD"


@dataclass
class LocalAccounts:
    database_urls: dict[str, str] = field(default_factory=dict)
    amqp_urls: dict[str, str] = field(default_factory=dict)

    def environment(self, module: str, env: dict[str, str]) -> dict[str, str]:
        """`env` for `python -m module`: its own URLs only, none for what it does not use."""
        service = SERVICE_OF_MODULE[module]
        own = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "AMQP_URL")}
        if service in self.database_urls:
            own["DATABASE_URL"] = self.database_urls[service]
        if service in self.amqp_urls:
            own["AMQP_URL"] = self.amqp_urls[service]
        return own


def database_accounts(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """(the migrate step's environment that sets each role's password, service -> its database URL)."""
    prefix = read(db_roles.RoleSettings).prefix
    passwords = {s: secrets.token_hex(16) for s in db_roles.SERVICES}
    migrate_env = {password_variable(s, "DATABASE"): p for s, p in passwords.items()}
    urls = {
        s: with_login(settings.database_url, db_roles.role_name(s, prefix), p) for s, p in passwords.items()
    }
    return migrate_env, urls


async def broker_accounts(settings: Settings) -> tuple[dict[str, str], str | None]:
    """(service -> its AMQP URL, None) once each user exists on the local broker, else ({}, why not)."""
    admin = read(BrokerUserSettings)
    passwords = {s: secrets.token_hex(16) for s in broker_users.SERVICES}
    try:
        async with management_session(admin.admin_user, admin.admin_password) as session:
            users = await apply_users(
                ManagementApi(session, admin.management_url), settings.amqp_prefix, passwords, admin.vhost
            )
    except BROKER_ADMIN_FAILED as exc:
        return {}, (
            f"could not create the services' RabbitMQ users through {admin.management_url} ({exc}); "
            "every service uses AMQP_URL's user instead. To give each its own: "
            "rabbitmq-plugins enable rabbitmq_management (RABBITMQ_ADMIN_USER/RABBITMQ_ADMIN_PASSWORD "
            "name an administrator, default guest/guest from this machine)"
        )
    return {s: with_login(settings.amqp_url, users[s], passwords[s]) for s in users}, None


async def remove_broker_users(settings: Settings) -> None:
    """Delete this run's broker users (their passwords die with the run anyway)."""
    admin = read(BrokerUserSettings)
    try:
        async with management_session(admin.admin_user, admin.admin_password) as session:
            api = ManagementApi(session, admin.management_url)
            for service in broker_users.SERVICES:
                await api.delete("users", broker_users.user_name(service, settings.amqp_prefix))
    except BROKER_ADMIN_FAILED as exc:
        print(f"could not remove this run's RabbitMQ users ({exc}); they are harmless", flush=True)
