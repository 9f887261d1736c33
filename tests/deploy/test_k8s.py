"""deploy/k8s: valid by Kubernetes' own schemas, and complete for the code as it is."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from auction_shared import broker_users, db_roles
from tests.deploy import codebase, manifests

# The oldest Kubernetes still commonly run, and the newest the schema package knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
# Kinds with no schema in Kubernetes itself; each has its own structural test below.
CUSTOM_KINDS = {"RabbitmqCluster", "Kustomization"}
SECRET_EXAMPLE = "secret.example.yaml"
# What the RabbitMQ Cluster Operator's v1beta1 RabbitmqCluster spec accepts at its top level
# (its API reference); a key outside it is a typo the operator would reject.
RABBITMQ_CLUSTER_SPEC_KEYS = {
    "replicas",
    "image",
    "imagePullSecrets",
    "service",
    "persistence",
    "resources",
    "affinity",
    "tolerations",
    "rabbitmq",
    "tls",
    "override",
    "skipPostDeploySteps",
    "terminationGracePeriodSeconds",
    "delayStartSeconds",
    "secretBackend",
    "autoEnableAllFeatureFlags",
}
OPERATOR_USER_KEYS = {"username", "password", "host", "port", "provider", "type", "connection_string"}


def documents() -> list[tuple[Path, dict]]:
    return manifests.k8s_all()


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def deployments() -> dict[str, dict]:
    return manifests.k8s_kind("Deployment")


@pytest.fixture(scope="module")
def config_map() -> dict[str, str]:
    return manifests.k8s_kind("ConfigMap")["auction-config"]["data"]


@pytest.fixture(scope="module")
def rabbitmq_cluster() -> dict:
    clusters = manifests.k8s_kind("RabbitmqCluster")
    assert len(clusters) == 1
    return next(iter(clusters.values()))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_are_valid_by_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for path, doc in documents():
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = f"{path.name} {doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{where}: {list(exc.path)}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_the_schemas_catch_a_mistake(deployments: dict) -> None:
    """The validator has teeth: a misspelled probe field and a string replica count both fail."""
    broken = copy.deepcopy(deployments["gateway"])
    containers(broken)[0]["readinessProbe"]["httpGet"]["paht"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    broken = copy.deepcopy(deployments["gateway"])
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml_of("kustomization.yaml")
    files = {p.name for p in manifests.k8s_files()} - {"kustomization.yaml", SECRET_EXAMPLE}
    assert set(kustomization["resources"]) == files
    assert len(kustomization["resources"]) == len(files), "a resource listed twice"
    namespace = manifests.k8s_kind("Namespace")
    assert list(namespace) == [kustomization["namespace"]]
    used = {
        c["image"].split(":")[0]
        for _, d in documents()
        if d["kind"] in ("Deployment", "Job")
        for c in containers(d)
    }
    assert {i["name"] for i in kustomization["images"]} == used


def yaml_of(name: str) -> dict:
    (doc,) = manifests.k8s_documents(manifests.K8S_DIR / name)
    return doc


def test_every_service_of_the_code_has_a_deployment_running_its_image(deployments: dict) -> None:
    targets = {s.name: s for s in manifests.dockerfile_stages() if s.name and s.cmd}
    for service in codebase.services():
        assert service.folder in deployments, f"no Deployment for {service.folder}"
        (container,) = containers(deployments[service.folder])
        image = container["image"].split(":")[0]
        # One image per Dockerfile target: auction-<target>.
        assert image == f"auction-{service.folder}"
        assert targets[service.folder].cmd == ["python", "-m", service.module]
        assert "command" not in container and "args" not in container, "the image's CMD runs it"
    jobs = manifests.k8s_kind("Job")
    assert set(jobs) == {"auction-migrate", "auction-broker-users"}
    for job_name, module in (
        ("auction-migrate", "auction_shared.migrate"),
        ("auction-broker-users", "auction_shared.broker_users"),
    ):
        (container,) = containers(jobs[job_name])
        cmd = (
            container.get("command") or targets[container["image"].split(":")[0].removeprefix("auction-")].cmd
        )
        assert cmd == ["python", "-m", module], job_name
        assert codebase.module_exists(module)
        assert pod_spec(jobs[job_name])["restartPolicy"] in ("OnFailure", "Never")


def test_replicas(deployments: dict) -> None:
    for service in codebase.services():
        assert deployments[service.folder]["spec"]["replicas"] >= 2, service.folder
    for name, hpa in manifests.k8s_kind("HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert hpa["spec"]["minReplicas"] >= 2, name
    # The worker is never autoscaled past its role: one active consumer per shard.
    hpas = manifests.k8s_kind("HorizontalPodAutoscaler").values()
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert "bid-worker" not in autoscaled


def container_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_probes_call_routes_the_code_serves_on_its_ports(deployments: dict, config_map: dict) -> None:
    for service in codebase.services():
        (container,) = containers(deployments[service.folder])
        env = container_env(container, config_map)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            assert probe and "httpGet" in probe, f"{service.folder}: no HTTP {kind}"
            path, port = probe["httpGet"]["path"], container_port(container, probe["httpGet"]["port"])
            assert path in service.get_routes, f"{service.folder} {kind}: the code serves no GET {path}"
            expected = service.port if service.port is not None else int(env["WORKER_HEALTH_PORT"])
            assert port == expected, f"{service.folder} {kind} probes :{port}, the code uses :{expected}"
        # A service is ready when its own dependencies answer. The gateway's /health asks the other
        # Deployments instead, so its readiness is /ping (one upstream down must not take every
        # gateway out of its Service).
        ready = container["readinessProbe"]["httpGet"]["path"]
        assert ready == ("/ping" if service.folder == "gateway" else "/health"), service.folder


def test_services_route_to_the_code_ports(deployments: dict, config_map: dict) -> None:
    services = manifests.k8s_kind("Service")
    for service in codebase.services():
        labels = deployments[service.folder]["spec"]["template"]["metadata"]["labels"]
        assert deployments[service.folder]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if service.port is None:
            assert service.folder not in services, "the worker has no API to serve"
            continue
        svc = services[service.folder]
        assert svc["spec"]["selector"].items() <= labels.items(), service.folder
        (port,) = svc["spec"]["ports"]
        (container,) = containers(deployments[service.folder])
        assert port["port"] == service.port
        assert container_port(container, port["targetPort"]) == service.port
    for var in ("AUTH_URL", "OFFERS_URL", "BIDS_URL"):
        url = urlsplit(config_map[var])
        assert url.hostname in services, f"{var} names no Service"
        assert url.port == services[url.hostname]["spec"]["ports"][0]["port"], var


def container_env(container: dict, config_map: dict[str, str]) -> dict[str, str]:
    """Name -> value (or a `secret:<name>/<key>` marker) as the kubelet would set it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "auction-config"
        env.update(config_map)
    for item in container.get("env", []):
        if "value" in item:
            for ref in re.findall(r"\$\((\w+)\)", item["value"]):
                assert ref in env, f"{item['name']} refers to $({ref}) before it is defined"
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = manifests.k8s_kind("ConfigMap")[ref["name"]]["data"][ref["key"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return env


# What a Deployment does not use, so it does not get it (the same as in docker-compose.yml).
NOT_USED = {
    "gateway": {"DATABASE_URL"},
    "auth": {"AMQP_URL"},
    "offers": set(),
    "bids": set(),
    "bid-worker": {"JWT_SECRET"},
}


def test_every_setting_the_code_needs_is_set(deployments: dict, config_map: dict) -> None:
    variables = codebase.env_vars()
    assert set(NOT_USED) == set(deployments)
    for name, deployment in deployments.items():
        (container,) = containers(deployment)
        env = container_env(container, config_map)
        for var in variables.values():
            if var.name in NOT_USED[name]:
                assert var.name not in env, f"{name} gets {var.name}, which it does not use"
                continue
            if var.defaults_to_loopback or var.required:
                assert env.get(var.name), f"{name}: {var.name} is not set (read in {var.files})"
            if var.defaults_to_loopback:
                assert not any(h in env[var.name] for h in codebase.LOOPBACK), f"{name}: {var.name}"
    assert config_map["WS_ALLOWED_ORIGINS"], "browsers may open the WebSocket only from named origins"
    migrate = container_env(containers(manifests.k8s_kind("Job")["auction-migrate"])[0], config_map)
    assert migrate["DATABASE_URL"] == "secret:auction-secrets/MIGRATE_DATABASE_URL"


def test_each_workload_logs_in_as_its_own_database_role_and_broker_user(
    deployments: dict, config_map: dict
) -> None:
    for name, deployment in deployments.items():
        env = container_env(containers(deployment)[0], config_map)
        secret_of = {k: v.removeprefix("secret:auction-secrets/") for k, v in env.items()}
        variable = name.upper().replace("-", "_")
        if "DATABASE_URL" in env:
            url = urlsplit(env["DATABASE_URL"])
            assert url.username == db_roles.role_name(name), name
            assert url.password == "$(DATABASE_PASSWORD)"
            assert secret_of["DATABASE_PASSWORD"] == f"{variable}_DATABASE_PASSWORD", name
        else:
            assert name not in db_roles.SERVICES, f"{name} needs its database URL"
        if "AMQP_URL" in env:
            url = urlsplit(env["AMQP_URL"])
            assert url.username == broker_users.user_name(name, config_map["AMQP_PREFIX"]), name
            assert url.password == "$(AMQP_PASSWORD)"
            assert secret_of["AMQP_PASSWORD"] == f"{variable}_AMQP_PASSWORD", name
        else:
            assert name not in broker_users.SERVICES, f"{name} needs its broker URL"
    # The Jobs set each role's and user's password from the same keys.
    jobs = manifests.k8s_kind("Job")
    migrate = container_env(containers(jobs["auction-migrate"])[0], config_map)
    creator = container_env(containers(jobs["auction-broker-users"])[0], config_map)
    for service in db_roles.SERVICES:
        variable = service.upper().replace("-", "_") + "_DATABASE_PASSWORD"
        assert migrate[variable] == f"secret:auction-secrets/{variable}"
    for service in broker_users.SERVICES:
        variable = service.upper().replace("-", "_") + "_AMQP_PASSWORD"
        assert creator[variable] == f"secret:auction-secrets/{variable}"
    assert creator["RABBITMQ_ADMIN_USER"] == "secret:auction-rabbitmq-default-user/username"


def referenced(env: dict[str, str]) -> set[str]:
    """Variables that only feed $(...) references in others (a URL built from its parts)."""
    return {ref for value in env.values() for ref in re.findall(r"\$\((\w+)\)", value)}


def test_every_variable_set_is_read_by_the_code_or_comes_from_a_known_secret(
    config_map: dict, rabbitmq_cluster: dict
) -> None:
    variables = codebase.env_vars()
    secret = manifests.k8s_kind("Secret")["auction-secrets"]["stringData"]
    operator_secret = f"{rabbitmq_cluster['metadata']['name']}-default-user"
    for workload in [*manifests.k8s_kind("Deployment").values(), *manifests.k8s_kind("Job").values()]:
        (container,) = containers(workload)
        env = container_env(container, config_map)
        name = workload["metadata"]["name"]
        for key, value in env.items():
            if value.startswith("secret:"):
                secret_name, secret_key = value.removeprefix("secret:").split("/")
                if secret_name == operator_secret:
                    assert secret_key in OPERATOR_USER_KEYS, f"{name}: {key}"
                else:
                    assert secret_name == "auction-secrets" and secret_key in secret, f"{name}: {key}"
        # Parts of URLs only feed $(...) references; anything else no code reads is a typo.
        unknown = set(env) - set(variables) - referenced(env)
        assert not unknown, f"{name} sets {unknown}, which no code reads (a typo?)"
    # The example Secret holds every required setting, as a placeholder that passes no check.
    for var in variables.values():
        if var.required:
            assert "REPLACE" in secret[var.name]
    assert "MIGRATE_DATABASE_URL" in secret, "PostgreSQL is external: the migrating role's URL is a secret"


def test_amqp_url_names_the_rabbitmq_cluster(
    deployments: dict, config_map: dict, rabbitmq_cluster: dict
) -> None:
    for name, deployment in deployments.items():
        (container,) = containers(deployment)
        env = container_env(container, config_map)
        if "AMQP_URL" not in env:
            continue
        url = urlsplit(env["AMQP_URL"])
        assert url.scheme == "amqp"
        assert url.hostname == rabbitmq_cluster["metadata"]["name"], name
        assert url.port == 5672


def test_every_container_has_resources_and_runs_unprivileged() -> None:
    dockerfile_uid = int(manifests.stage("runtime").all("USER")[-1].split(":")[0])
    for path, doc in documents():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        name = f"{path.name}:{doc['metadata']['name']}"
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == dockerfile_uid, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod["containers"]:
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name}: {bound}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name


def test_rabbitmq_is_a_three_node_operator_cluster_with_the_hash_exchange(rabbitmq_cluster: dict) -> None:
    assert rabbitmq_cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    spec = rabbitmq_cluster["spec"]
    assert set(spec) <= RABBITMQ_CLUSTER_SPEC_KEYS, set(spec) - RABBITMQ_CLUSTER_SPEC_KEYS
    assert spec["replicas"] == 3
    assert re.fullmatch(r"rabbitmq:3\.\d+-management", spec["image"])
    plugins = spec["rabbitmq"]["additionalPlugins"]
    assert "rabbitmq_consistent_hash_exchange" in plugins
    assert all(re.fullmatch(r"\w+", p) for p in plugins)
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][bound])
    assert spec["persistence"]["storage"]


def test_shard_queues_are_quorum_queues_in_the_code() -> None:
    """The manifests promise replicated shard queues; the services declare them so (broker.py)."""
    source = (codebase.SHARED / "auction_shared" / "broker.py").read_text()
    declaration = source[source.index("for name in topology.shard_queues") :]
    declaration = declaration[: declaration.index("shards.append")]
    assert '"x-queue-type": "quorum"' in declaration
    assert '"x-single-active-consumer": True' in declaration


def test_the_configmap_sets_no_secret(config_map: dict) -> None:
    variables = codebase.env_vars()
    for var in variables.values():
        if var.required:
            assert var.name not in config_map
    assert "DATABASE_URL" not in config_map and "AMQP_URL" not in config_map, "URLs carry passwords"


def test_service_link_variables_cannot_shadow_settings() -> None:
    """Kubernetes injects <SERVICE>_PORT=tcp://ip:port and friends for every Service in the
    namespace; where such a name is a setting the code reads (AUTH_PORT for Service `auth`), a pod
    must turn the injection off, or the service would fail to parse its own port."""
    variables = set(codebase.env_vars())
    injected = set()
    for name in manifests.k8s_kind("Service"):
        prefix = name.upper().replace("-", "_")
        injected |= {f"{prefix}_PORT", f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT"}
    if not injected & variables:
        return
    for path, doc in documents():
        if doc["kind"] in ("Deployment", "Job"):
            assert pod_spec(doc).get("enableServiceLinks") is False, f"{path.name}: {doc['metadata']['name']}"
