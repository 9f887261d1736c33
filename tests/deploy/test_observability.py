"""The observability profile of docker-compose.yml, its Prometheus and Grafana files, and the k8s
scrape annotations: consistent with each other and with the code, and Prometheus's own check passes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy import codebase, manifests
from tests.deploy.manifests import environment_of

OBSERVABILITY = codebase.ROOT / "deploy" / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus.yml"
DASHBOARDS = OBSERVABILITY / "grafana" / "dashboards"
PROFILE = {"prometheus", "grafana", "jaeger"}
RABBITMQ_METRICS = "rabbitmq:15692"


@pytest.fixture(scope="module")
def stack() -> dict:
    return manifests.compose()


def metrics_port(stack: dict) -> int:
    return int(environment_of(stack["services"]["gateway"])["METRICS_PORT"])


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of every bind mount."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[target] = source
    return found


def test_the_profile_starts_only_on_request_with_pinned_images(stack: dict) -> None:
    services = stack["services"]
    for name in PROFILE:
        assert services[name]["profiles"] == ["observability"], name
        image = services[name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: pin a release, not {image}"
    assert all("profiles" not in svc for name, svc in services.items() if name not in PROFILE)


def test_every_process_serves_metrics_on_a_port_that_is_not_its_api(stack: dict) -> None:
    port = metrics_port(stack)
    for service in codebase.services():
        env = environment_of(stack["services"][service.folder])
        assert int(env["METRICS_PORT"]) == port, service.folder
        assert service.port != port, f"{service.folder}: metrics on its public port"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "", "traces leave a process only when asked to"


def test_prometheus_scrapes_every_process_and_the_broker_plugin(stack: dict) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in codebase.services():
        (discovery,) = jobs[service.folder]["dns_sd_configs"]
        assert discovery["names"] == [service.folder] and discovery["port"] == metrics_port(stack)
    assert jobs["rabbitmq"]["static_configs"] == [{"targets": [RABBITMQ_METRICS]}]
    plugins = (codebase.ROOT / "deploy" / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins
    prometheus = stack["services"]["prometheus"]
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./deploy/observability/prometheus.yml"


def test_promtool_accepts_the_shipped_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `apt-get install prometheus` (.ci/test-tools does it)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_datasources_its_dashboard_uses(stack: dict) -> None:
    grafana = mounts(stack["services"]["grafana"])
    provisioning = codebase.ROOT / grafana["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["jaeger"]["url"] == "http://jaeger:16686"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    (provider,) = providers
    assert grafana[provider["options"]["path"]] == "./deploy/observability/grafana/dashboards"
    dashboard = json.loads((DASHBOARDS / "auction.json").read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in by_uid, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_jaeger_takes_otlp_from_the_services(stack: dict) -> None:
    jaeger = stack["services"]["jaeger"]
    assert "4318" in jaeger["expose"] and jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "http://jaeger:4318" in manifests.ENV_EXAMPLE.read_text()


def test_k8s_pods_are_annotated_for_scraping_on_a_port_no_service_routes() -> None:
    port = int(manifests.k8s_kind("ConfigMap")["auction-config"]["data"]["METRICS_PORT"])
    for name, deployment in manifests.k8s_kind("Deployment").items():
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert int(annotations["prometheus.io/port"]) == port, name
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert ports["metrics"] == port, name
    for name, service in manifests.k8s_kind("Service").items():
        targets = {p.get("targetPort") for p in service["spec"]["ports"]}
        assert "metrics" not in targets and port not in targets, f"Service {name} exposes the metrics port"
