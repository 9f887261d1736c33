"""deploy/k8s/network-policies.yaml, evaluated as Kubernetes would: only the gateway takes outside
traffic and reaches the services; only the services that use them reach PostgreSQL and RabbitMQ."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pytest

from tests.deploy import manifests

NAMESPACE = "auction"
NAME = "app.kubernetes.io/name"
DATABASE_PORT, AMQP_PORT, MANAGEMENT_PORT = 5432, 5672, 15672
SERVICE_PORTS = {"auth": 8001, "offers": 8002, "bids": 8003}


@dataclass(frozen=True)
class Peer:
    """A pod of this namespace (by its name label), of another namespace, or anything outside."""

    name: str | None
    namespace: str | None = NAMESPACE

    @property
    def labels(self) -> dict[str, str]:
        return {NAME: self.name} if self.name else {}


OUTSIDE = Peer(None, None)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In", "only In is modelled here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def peer_matches(peer: dict[str, Any], who: Peer) -> bool:
    if "ipBlock" in peer:
        return who is OUTSIDE
    if who.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": who.namespace}):
            return False
    elif who.namespace != NAMESPACE:
        return False
    return selects(peer.get("podSelector", {}), who.labels)


def rule_allows(rule: dict[str, Any], key: str, who: Peer, port: int) -> bool:
    peers = rule.get(key)
    if peers is not None and not any(peer_matches(p, who) for p in peers):
        return False
    ports = rule.get("ports")
    return ports is None or any(p.get("port") == port for p in ports)


@functools.cache
def policies() -> tuple[dict[str, Any], ...]:
    return tuple(manifests.k8s_kind("NetworkPolicy").values())


def allowed(direction: str, pod: str, other: Peer, port: int) -> bool:
    """Whether `pod` may take (Ingress) from / send (Egress) to `other` on `port`."""
    key = "from" if direction == "Ingress" else "to"
    applying = [
        p
        for p in policies()
        if selects(p["spec"]["podSelector"], {NAME: pod}) and direction in p["spec"]["policyTypes"]
    ]
    assert applying, f"no policy isolates {pod} for {direction}"
    rules = [r for p in applying for r in p["spec"].get(direction.lower(), [])]
    return any(rule_allows(r, key, other, port) for r in rules)


def can_connect(source: str | None, target: str | None, port: int) -> bool:
    """A connection needs the source's egress and the target's ingress to allow it."""
    src = Peer(source) if source else OUTSIDE
    dst = Peer(target) if target else OUTSIDE
    out = allowed("Egress", source, dst, port) if source else True
    into = allowed("Ingress", target, src, port) if target else True
    return out and into


@functools.cache
def workloads() -> frozenset[str]:
    names = {
        d["spec"]["template"]["metadata"]["labels"][NAME] for d in manifests.k8s_kind("Deployment").values()
    }
    names |= {j["spec"]["template"]["metadata"]["labels"][NAME] for j in manifests.k8s_kind("Job").values()}
    (cluster,) = manifests.k8s_kind("RabbitmqCluster")
    return frozenset(names | {cluster})


def test_everything_is_denied_unless_allowed() -> None:
    deny = manifests.k8s_kind("NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    kustomization = manifests.k8s_documents(manifests.K8S_DIR / "kustomization.yaml")[0]
    assert "network-policies.yaml" in kustomization["resources"]


def test_only_the_gateway_is_reachable_from_outside() -> None:
    for pod in workloads():
        reachable = any(
            can_connect(None, pod, port)
            for port in (8000, 8001, 8002, 8003, 8080, AMQP_PORT, MANAGEMENT_PORT)
        )
        assert reachable == (pod == "gateway"), pod


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_only_the_gateway_reaches_a_service(service: str) -> None:
    port = SERVICE_PORTS[service]
    for pod in workloads():
        assert can_connect(pod, service, port) == (pod == "gateway"), f"{pod} -> {service}"


def test_only_the_services_that_use_it_reach_the_database() -> None:
    users = {pod for pod in workloads() if can_connect(pod, None, DATABASE_PORT)}
    assert users == {"auth", "offers", "bids", "bid-worker", "migrate"}


def test_only_the_services_that_use_it_reach_the_broker() -> None:
    (cluster,) = manifests.k8s_kind("RabbitmqCluster")
    amqp = {pod for pod in workloads() - {cluster} if can_connect(pod, cluster, AMQP_PORT)}
    assert amqp == {"offers", "bids", "gateway", "bid-worker"}
    management = {pod for pod in workloads() - {cluster} if can_connect(pod, cluster, MANAGEMENT_PORT)}
    assert management == {"broker-users"}
    # The nodes of the cluster talk to each other (Erlang distribution, quorum replication).
    assert can_connect(cluster, cluster, 25672) and can_connect(cluster, cluster, 4369)


def test_every_pod_resolves_names() -> None:
    dns = Peer("kube-dns", "kube-system")
    for pod in workloads():
        assert allowed("Egress", pod, dns, 53), pod
