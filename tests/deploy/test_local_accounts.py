"""`make run` gives each process only its own logins (deploy/local_accounts.py), under the names the
migrate step and broker-users read."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import fields
from types import ModuleType
from urllib.parse import urlsplit

from auction_shared import broker_users, db_roles
from auction_shared.broker_users import BrokerUserSettings
from auction_shared.config import Settings, env_name
from auction_shared.db_roles import RoleSettings
from tests.deploy.codebase import ROOT


def local_accounts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_accounts", ROOT / "deploy" / "local_accounts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("local_accounts", module)
    spec.loader.exec_module(module)
    return module


def test_each_process_gets_only_its_own_urls() -> None:
    module = local_accounts()
    accounts = module.LocalAccounts(
        database_urls={s: f"postgresql://{s}@db/auction" for s in db_roles.SERVICES},
        amqp_urls={s: f"amqp://{s}@mq/" for s in broker_users.SERVICES},
    )
    admin = {
        "DATABASE_URL": "postgresql://postgres@db/auction",
        "AMQP_URL": "amqp://guest:guest@mq/",
        "X": "1",
    }
    seen = {}
    for module_name, service in module.SERVICE_OF_MODULE.items():
        env = accounts.environment(module_name, admin)
        assert env["X"] == "1"
        assert env.get("DATABASE_URL") == accounts.database_urls.get(service), module_name
        assert env.get("AMQP_URL") == accounts.amqp_urls.get(service), module_name
        seen[service] = env
    assert "DATABASE_URL" not in seen["gateway"], "the gateway has no database"
    assert "AMQP_URL" not in seen["auth"], "auth has no broker"


def test_the_passwords_reach_the_settings_that_set_them() -> None:
    module = local_accounts()
    read_by_migrate = {env_name(f) for f in fields(RoleSettings)}
    read_by_broker_users = {env_name(f) for f in fields(BrokerUserSettings)}
    for service in db_roles.SERVICES:
        assert module.password_variable(service, "DATABASE") in read_by_migrate, service
    for service in broker_users.SERVICES:
        assert module.password_variable(service, "AMQP") in read_by_broker_users, service
    migrate_env, urls = module.database_accounts(Settings())
    for service, url in urls.items():
        parts = urlsplit(url)
        assert parts.username == db_roles.role_name(service)
        assert parts.password == migrate_env[module.password_variable(service, "DATABASE")]
