"""docker-compose.yml: valid by the Compose Specification, and complete for the code as it is."""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from urllib.parse import SplitResult, urlsplit

import jsonschema
import pytest

from auction_shared import broker_users, db_roles
from auction_shared.config import ConfigError
from tests.deploy import codebase, manifests
from tests.deploy.manifests import environment_of

# RabbitMQ's management UI: the only port published besides the gateway's.
MANAGEMENT_PORT = 15672
INFRASTRUCTURE = {"postgres", "rabbitmq"}
MIGRATE = "migrate"
BROKER_USERS = "broker-users"
# One-shots that run to completion before the services start.
ONE_SHOTS = {MIGRATE, BROKER_USERS}
# compose service -> the service name in db_roles / broker_users (its role and user).
SERVICE_ACCOUNT = {
    "auth": "auth",
    "offers": "offers",
    "bids": "bids",
    "gateway": "gateway",
    "bid-worker": "bid-worker",
}
# `--profile observability`: Prometheus, Grafana and Jaeger's UI, on the same loopback default.
OBSERVABILITY_UIS = {"prometheus": {9090}, "grafana": {3000}, "jaeger": {16686}}


def compose_schema() -> dict:
    """The Compose Specification's JSON schema, as check-jsonschema vendors it (pinned in
    requirements-dev.txt; upstream: github.com/compose-spec/compose-spec, schema/compose-spec.json)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def stack() -> dict:
    return manifests.compose()


@pytest.fixture(scope="module")
def app_services(stack: dict) -> dict[str, dict]:
    """Every service built from this repository's Dockerfile (the code's processes and migrate)."""
    return {name: svc for name, svc in stack["services"].items() if "build" in svc}


def published_container_ports(service: dict) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    v = validator()
    for document in (manifests.compose_raw(), manifests.compose()):
        errors = sorted(v.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake() -> None:
    """The validator has teeth: a misspelled key, or a replica count that is not a number, fails."""
    v = validator()
    misspelled = copy.deepcopy(manifests.compose())
    misspelled["services"]["gateway"]["helthcheck"] = misspelled["services"]["gateway"].pop("healthcheck")
    assert not v.is_valid(misspelled)
    bad_depends = copy.deepcopy(manifests.compose())
    bad_depends["services"]["gateway"]["depends_on"]["auth"]["condition"] = "service_ready"
    assert not v.is_valid(bad_depends)


def test_every_service_of_the_code_has_a_compose_service(app_services: dict) -> None:
    dockerfile = {s.name: s for s in manifests.dockerfile_stages() if s.name}
    for service in codebase.services():
        assert service.folder in app_services, f"no compose service for {service.folder}"
        target = app_services[service.folder]["build"]["target"]
        assert dockerfile[target].cmd == ["python", "-m", service.module], service.folder
    migrate_target = app_services[MIGRATE]["build"]["target"]
    assert dockerfile[migrate_target].cmd == ["python", "-m", "auction_shared.migrate"]
    for name, svc in app_services.items():
        assert svc["build"]["context"] == ".", name
        assert svc["build"]["target"] in dockerfile, f"{name}: no Dockerfile target {svc['build']['target']}"


def test_only_the_gateway_and_the_management_ui_are_published(stack: dict) -> None:
    """Besides the observability profile's own UIs; no process's METRICS_PORT is published."""
    gateway_port = next(s.port for s in codebase.services() if s.folder == "gateway")
    published = {name: published_container_ports(svc) for name, svc in stack["services"].items()}
    assert {n: p for n, p in published.items() if p} == {
        "gateway": {gateway_port},
        "rabbitmq": {MANAGEMENT_PORT},
        **OBSERVABILITY_UIS,
    }
    # On this machine only, unless .env says otherwise.
    for name in ("gateway", "rabbitmq", *OBSERVABILITY_UIS):
        assert all(str(p).startswith("127.0.0.1:") for p in stack["services"][name]["ports"])
    # Opening the API does not open the management UI: that is asked for on its own.
    opened = manifests.compose({**manifests.made_env(), "BIND_ADDRESS": "0.0.0.0"})
    assert opened["services"]["gateway"]["ports"] == [f"0.0.0.0:{gateway_port}:{gateway_port}"]
    assert opened["services"]["rabbitmq"]["ports"] == [f"127.0.0.1:{MANAGEMENT_PORT}:{MANAGEMENT_PORT}"]
    ui = manifests.compose({**manifests.made_env(), "MANAGEMENT_BIND_ADDRESS": "0.0.0.0"})
    assert ui["services"]["rabbitmq"]["ports"] == [f"0.0.0.0:{MANAGEMENT_PORT}:{MANAGEMENT_PORT}"]
    assert ui["services"]["gateway"]["ports"] == [f"127.0.0.1:{gateway_port}:{gateway_port}"]


def health_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", "exec form: the slim image has no shell tools to rely on"
    # The image has no curl: a Python one-liner with urllib, which fails on any non-200 answer.
    assert test[1:3] == ["python", "-c"], test
    urls = re.findall(r"http://[^'\"]+", test[3])
    assert len(urls) == 1, test
    return urls[0]


def test_every_http_service_is_health_checked_on_its_code_port(app_services: dict) -> None:
    for service in codebase.services():
        svc = app_services[service.folder]
        url = urlsplit(health_url(svc))
        assert url.hostname == "127.0.0.1"
        assert url.path in service.get_routes, f"{service.folder}: no GET {url.path} in its code"
        if service.port is not None:
            assert url.port == service.port, service.folder
            reachable = {int(p) for p in svc.get("expose", [])} | published_container_ports(svc)
            assert service.port in reachable, f"{service.folder}: :{service.port} not exposed"
        else:  # the worker: only its optional health endpoint listens
            assert url.port == int(environment_of(svc)["WORKER_HEALTH_PORT"])
        assert environment_of(svc)["HOST"] == "0.0.0.0", "a service on 127.0.0.1 is unreachable"


def test_infrastructure_is_pinned_and_health_checked(stack: dict) -> None:
    postgres, rabbitmq = stack["services"]["postgres"], stack["services"]["rabbitmq"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?-alpine", postgres["image"])
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert re.fullmatch(r"rabbitmq:3\.\d+-management", rabbitmq["image"])
    # Healthy only once the AMQP port accepts connections (`ping` answers before it listens).
    assert rabbitmq["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "check_port_connectivity"]
    for name, svc in (("postgres", postgres), ("rabbitmq", rabbitmq)):
        named = [v.split(":")[0] for v in svc["volumes"] if not v.startswith(".")]
        assert named and all(v in stack["volumes"] for v in named), f"{name}: data in a named volume"


def test_rabbitmq_enables_the_plugins_the_pipeline_needs(stack: dict) -> None:
    mounts = {}
    for volume in stack["services"]["rabbitmq"]["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    plugins_file = codebase.ROOT / mounts["/etc/rabbitmq/enabled_plugins"]
    plugins = plugins_file.read_text().strip()
    assert re.fullmatch(r"\[[a-z_,\s]+\]\.", plugins), "an Erlang list term ending with a dot"
    enabled = {p.strip() for p in plugins[1:-2].split(",")}
    # The bid pipeline's x-consistent-hash exchange, and the management UI this file replaces.
    assert {"rabbitmq_consistent_hash_exchange", "rabbitmq_management"} <= enabled
    conf_targets = [t for t in mounts if t.startswith("/etc/rabbitmq/conf.d/")]
    assert conf_targets and all((codebase.ROOT / mounts[t]).is_file() for t in conf_targets)
    # Why the plugin: the code declares an x-consistent-hash exchange.
    assert "X_CONSISTENT_HASH" in (codebase.SHARED / "auction_shared" / "broker.py").read_text()


def test_start_order_waits_for_health_and_migrations(stack: dict, app_services: dict) -> None:
    services = stack["services"]
    for name, svc in services.items():
        for dep, rule in (svc.get("depends_on") or {}).items():
            condition = rule["condition"]
            if dep in ONE_SHOTS:
                assert condition == "service_completed_successfully", name
            else:
                assert condition == "service_healthy", f"{name} -> {dep}"
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"
    for one_shot in ONE_SHOTS:
        assert services[one_shot]["restart"] == "no"
    assert "postgres" in services[MIGRATE]["depends_on"]
    assert "rabbitmq" in services[BROKER_USERS]["depends_on"]
    gateway = services["gateway"]
    for var in ("AUTH_URL", "OFFERS_URL", "BIDS_URL"):
        upstream = urlsplit(environment_of(gateway)[var]).hostname
        assert upstream in gateway["depends_on"], f"the gateway starts before its upstream {upstream}"
    # Everything that uses the database starts after the migrations (which also make its role), and
    # everything that uses the broker after its user exists.
    for name, svc in app_services.items():
        env = environment_of(svc)
        if name not in ONE_SHOTS and "DATABASE_URL" in env:
            assert svc["depends_on"].get(MIGRATE), name
        if name not in ONE_SHOTS and "AMQP_URL" in env:
            assert svc["depends_on"].get(BROKER_USERS), name


def test_bid_worker_runs_two_replicas(stack: dict) -> None:
    worker = stack["services"]["bid-worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    assert "container_name" not in worker, "a fixed container name allows one replica only"


# What a process does not use, so it does not get it: the gateway has no database, auth no broker,
# the worker checks no token, and the one-shots run no service.
NOT_USED = {
    "gateway": {"DATABASE_URL"},
    "auth": {"AMQP_URL", "AUTH_URL", "OFFERS_URL", "BIDS_URL"},
    "offers": {"AUTH_URL", "OFFERS_URL", "BIDS_URL"},
    "bids": {"AUTH_URL", "OFFERS_URL", "BIDS_URL"},
    "bid-worker": {"JWT_SECRET", "AUTH_URL", "OFFERS_URL", "BIDS_URL"},
    MIGRATE: {"JWT_SECRET", "AMQP_URL", "HOST", "AUTH_URL", "OFFERS_URL", "BIDS_URL"},
    BROKER_USERS: {"JWT_SECRET", "AMQP_URL", "DATABASE_URL", "HOST", "AUTH_URL", "OFFERS_URL", "BIDS_URL"},
}


def test_every_setting_the_code_needs_is_set(app_services: dict) -> None:
    variables = codebase.env_vars()
    assert {"JWT_SECRET", "DATABASE_URL", "AMQP_URL"} <= set(variables), "the source scan found nothing"
    assert set(NOT_USED) == set(app_services)
    for name, svc in app_services.items():
        env = environment_of(svc)
        for var in variables.values():
            if var.name in NOT_USED[name]:
                assert var.name not in env, f"{name} gets {var.name}, which it does not use"
                continue
            if var.required or var.defaults_to_loopback:
                assert env.get(var.name), f"{name}: {var.name} is not set (read in {var.files})"
            if var.defaults_to_loopback:
                assert not any(h in env[var.name] for h in codebase.LOOPBACK), f"{name}: {var.name}"
        unknown = set(env) - set(variables)
        assert not unknown, f"{name} sets {unknown}, which no code reads (a typo?)"
        if "JWT_SECRET" in env:
            codebase.check_required("JWT_SECRET", env["JWT_SECRET"])
    # Browsers may open the WebSocket only from the origins compose names.
    assert environment_of(app_services["gateway"])["WS_ALLOWED_ORIGINS"]


def test_service_urls_name_compose_services_on_their_code_ports(app_services: dict, stack: dict) -> None:
    ports = {s.folder: s.port for s in codebase.services()}
    for name, svc in app_services.items():
        env = environment_of(svc)
        for var in ("AUTH_URL", "OFFERS_URL", "BIDS_URL"):
            if var in env:
                url = urlsplit(env[var])
                assert url.hostname in stack["services"], f"{name}: {var} -> {url.hostname}"
                assert url.port == ports[url.hostname], f"{name}: {var}"
        if "DATABASE_URL" in env:
            assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
        if "AMQP_URL" in env:
            assert urlsplit(env["AMQP_URL"]).hostname == "rabbitmq"


def test_each_service_logs_in_to_postgres_as_its_own_role_and_never_as_the_superuser() -> None:
    env = manifests.made_env()
    services = manifests.compose(env)["services"]
    postgres = services["postgres"]["environment"]
    init = codebase.ROOT / "deploy" / "postgres" / "init-migrator.sh"
    mounts = dict(v.split(":")[:2][::-1] for v in services["postgres"]["volumes"] if v.startswith("./"))
    assert (codebase.ROOT / mounts["/docker-entrypoint-initdb.d/10-migrator.sh"]).resolve() == init
    sql = [line for line in init.read_text().splitlines() if line.startswith(("CREATE", "ALTER", "GRANT"))]
    # The migrating role owns the database and may create the services' roles; it is no superuser.
    assert sql == [
        "CREATE ROLE auction_migrate LOGIN CREATEROLE PASSWORD :'password';",
        "CREATE DATABASE auction OWNER auction_migrate;",
    ]
    migrate = urlsplit(environment_of(services[MIGRATE])["DATABASE_URL"])
    assert (migrate.username, migrate.password) == ("auction_migrate", postgres["MIGRATE_DATABASE_PASSWORD"])
    for account, parts in logins(services, "DATABASE_URL", db_roles.SERVICES):
        assert parts.username == db_roles.role_name(account), account
        assert parts.username != postgres["POSTGRES_USER"]
        variable = account.upper().replace("-", "_") + "_DATABASE_PASSWORD"
        # The password the migrate step sets on the role is the one the service logs in with.
        assert parts.password == env[variable] == environment_of(services[MIGRATE])[variable], account
        assert parts.path == "/auction"


def logins(services: dict, url_variable: str, users: tuple[str, ...]) -> list[tuple[str, SplitResult]]:
    """(account, its URL) of each service in `users`; every other service must have no such URL."""
    found = []
    for name, account in SERVICE_ACCOUNT.items():
        url = environment_of(services[name]).get(url_variable)
        if account in users:
            found.append((account, urlsplit(url)))
        else:
            assert url is None, f"{name} has no use for {url_variable}"
    return found


def test_each_service_uses_its_own_broker_user_and_guest_is_gone() -> None:
    env = manifests.made_env()
    services = manifests.compose(env)["services"]
    rabbitmq = services["rabbitmq"]["environment"]
    assert rabbitmq["RABBITMQ_DEFAULT_USER"] not in ("", "guest"), "the default user replaces guest"
    creator = environment_of(services[BROKER_USERS])
    assert services[BROKER_USERS]["command"] == ["python", "-m", "auction_shared.broker_users"]
    assert codebase.module_exists("auction_shared.broker_users")
    assert creator["RABBITMQ_ADMIN_USER"] == rabbitmq["RABBITMQ_DEFAULT_USER"]
    assert creator["RABBITMQ_ADMIN_PASSWORD"] == rabbitmq["RABBITMQ_DEFAULT_PASS"]
    for account, parts in logins(services, "AMQP_URL", broker_users.SERVICES):
        assert parts.username == broker_users.user_name(account, creator["AMQP_PREFIX"]), account
        variable = account.upper().replace("-", "_") + "_AMQP_PASSWORD"
        assert parts.password == creator[variable] == env[variable], account


def test_compose_refuses_to_start_without_its_secrets() -> None:
    """Every password and secret must come from .env (`make env`); every other setting has a default."""
    uses = manifests.interpolation_uses(manifests.COMPOSE_FILE.read_text())
    secrets = {name for name, op, _ in uses if op == ":?"}
    assert {"JWT_SECRET", "POSTGRES_PASSWORD", "RABBITMQ_ADMIN_PASSWORD"} <= secrets
    for name, operator, default in uses:
        if name in secrets:
            assert operator == ":?", name
            assert "make env" in (default or ""), f"${{{name}}}: the message says how to get one"
        else:
            assert operator == ":-", f"${{{name}}} has no default"
            assert not any(w in name for w in ("PASSWORD", "SECRET")), f"{name} has a shipped default"
    with pytest.raises(KeyError, match="JWT_SECRET"):
        manifests.compose({})


def test_dot_env_example_documents_every_setting_compose_reads() -> None:
    example = manifests.env_example()
    interpolated = {name for name, _, _ in manifests.interpolation_uses(manifests.COMPOSE_FILE.read_text())}
    assert set(example) == interpolated
    # A copied, unedited example starts nothing: the services refuse its placeholder.
    stack = manifests.compose(example)
    with pytest.raises(ConfigError, match="placeholder"):
        codebase.check_required("JWT_SECRET", environment_of(stack["services"]["auth"])["JWT_SECRET"])
    with pytest.raises(ConfigError):
        codebase.check_required("JWT_SECRET", "too-short")
    # `make env` fills every secret with a new random value, which the services accept.
    first, second = manifests.made_env(), manifests.made_env()
    for name in (n for n, _, _ in manifests.interpolation_uses(manifests.COMPOSE_FILE.read_text())):
        if example[name] == manifests.make_env_module().MARK:
            assert first[name] != second[name] and len(first[name]) >= 32, name
    codebase.check_required("JWT_SECRET", first["JWT_SECRET"])
    assert ".env" in (codebase.ROOT / ".gitignore").read_text().split()


def test_make_env_never_overwrites_a_dot_env(tmp_path) -> None:
    (tmp_path / ".env.example").write_text(manifests.ENV_EXAMPLE.read_text())
    module = manifests.make_env_module()
    assert module.main(tmp_path) == 0
    written = (tmp_path / ".env").read_text()
    assert module.MARK not in written
    assert module.main(tmp_path) == 0
    assert (tmp_path / ".env").read_text() == written
