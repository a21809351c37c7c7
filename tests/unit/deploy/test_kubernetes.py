"""The Kubernetes manifests are valid objects (Kubernetes' own schemas, offline; KEDA's kinds
against the fields KEDA defines) and hold together: a Deployment per service, each scaled,
probed so that a broker outage restarts nothing, sized from the measured RSS, scraped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from datastore_common.topology import QUEUES

REPO = Path(__file__).parents[3]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
#: The oldest Kubernetes these use (autoscaling/v2, policy/v1) and the newest schemas known.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
SERVICES = ("gateway", "icat-writer", "fts-submitter", "status-poller")
WORKERS = SERVICES[1:]
#: Measured RSS in MiB (issue 14, make bench): every service idles at 70-100 MB; the
#: icat-writer peaked at 568 MiB registering a 10,000-file dataset.
IDLE_RSS_MIB = 100
PEAK_RSS_MIB = {"icat-writer": 568}


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def deployment(service: str) -> dict[str, Any]:
    return of_kind("Deployment")[f"datastore-{service}"]


def container(service: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment(service)["spec"]["template"]["spec"]["containers"]
    [main] = containers
    return main


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        of_kind("ConfigMap")["datastore-config"]["data"]["config.yaml"]
    )
    return loaded


# KEDA's kinds (keda.sh/v1alpha1) are not in Kubernetes' schemas: the fields KEDA's CRDs
# define for what is used here, with nothing else allowed (a misspelt key fails).
_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}},
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": {"type": "object"}},
}
KEDA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string"},
                            "apiVersion": {"type": "string"},
                            "envSourceContainerName": {"type": "string"},
                        },
                    },
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "authenticationRef": _REF,
                            },
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    },
}
#: The rabbitmq trigger's metadata (KEDA's scaler): the queue, how to read it, the target.
RABBITMQ_TRIGGER = {
    "type": "object",
    "required": ["queueName", "mode", "value"],
    "additionalProperties": False,
    "properties": {
        "queueName": {"type": "string"},
        "mode": {"enum": ["QueueLength", "MessageRate"]},
        "value": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "activationValue": {"type": "string"},
        "protocol": {"enum": ["auto", "http", "amqp"]},
        "vhostName": {"type": "string"},
    },
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("manifest", "doc"),
    [pytest.param(m, d, id=f"{m}:{d['kind']}/{d['metadata']['name']}") for m, d in documents()],
)
def test_every_manifest_is_a_valid_object(manifest: str, doc: dict[str, Any], version: str) -> None:
    if doc["kind"] in KEDA_SCHEMAS:
        jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])
        for trigger in doc["spec"].get("triggers", []):
            assert trigger["type"] == "rabbitmq"
            jsonschema.validate(trigger["metadata"], RABBITMQ_TRIGGER)
        return
    kubernetes_validate.validate(doc, version, strict=True)  # raises naming the wrong field


def test_the_schemas_refuse_a_wrong_field() -> None:
    """The check above can fail: a misspelt field is refused by both kinds of schema."""
    wrong = yaml.safe_load(yaml.safe_dump(deployment("gateway")))
    wrong["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSIONS[0], strict=True)
    scaled = yaml.safe_load(yaml.safe_dump(of_kind("ScaledObject")["datastore-icat-writer"]))
    scaled["spec"]["maxReplicas"] = 3  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMAS["ScaledObject"])


def test_a_deployment_per_service_each_with_its_disruption_budget() -> None:
    assert set(of_kind("Deployment")) == {f"datastore-{s}" for s in SERVICES}
    budgets = of_kind("PodDisruptionBudget")
    for service in SERVICES:
        labels = deployment(service)["spec"]["template"]["metadata"]["labels"]
        [budget] = [b for b in budgets.values() if b["spec"]["selector"]["matchLabels"] == labels]
        if service == "gateway":
            assert budget["spec"]["minAvailable"] >= 1
        else:  # a worker with one replica must not block a node drain
            assert budget["spec"]["maxUnavailable"] == 1


def test_the_gateway_scales_on_cpu_from_two_replicas() -> None:
    [hpa] = of_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "datastore-gateway"
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment("gateway")["spec"]  # the HPA owns it
    assert "cpu" in container("gateway")["resources"]["requests"]  # what utilisation is of


@pytest.mark.parametrize("worker", WORKERS)
def test_each_worker_scales_on_the_queue_it_consumes(worker: str) -> None:
    [scaled] = [
        s
        for s in of_kind("ScaledObject").values()
        if s["spec"]["scaleTargetRef"]["name"] == f"datastore-{worker}"
    ]
    assert "replicas" not in deployment(worker)["spec"]  # KEDA owns it
    assert scaled["spec"]["minReplicaCount"] >= 1  # delayed polls and retries need a consumer
    # Replicas share these; a single-active-consumer queue gains nothing from more of them.
    shared = {r.role for r in QUEUES if r.consumer == worker and not r.single_active_consumer}
    auths = of_kind("TriggerAuthentication")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["metadata"]["queueName"] in shared
        assert trigger["metadata"]["mode"] == "QueueLength"
        auth = auths[trigger["authenticationRef"]["name"]]
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"host"}


def test_keda_reads_the_broker_with_a_secret_no_service_gets() -> None:
    """KEDA's monitoring user is its own: no service's pod gets it."""
    keda_secrets = {
        ref["name"]
        for auth in of_kind("TriggerAuthentication").values()
        for ref in auth["spec"]["secretTargetRef"]
    }
    for service in SERVICES:
        pod = deployment(service)["spec"]["template"]["spec"]
        given = {s["secretRef"]["name"] for s in container(service).get("envFrom", [])}
        given |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert not given & keda_secrets


def test_workers_wait_for_the_broker_and_serve_metrics_to_other_pods() -> None:
    settings = config()
    assert settings["broker"]["connect_attempts"] == 0  # a broker outage is a wait
    assert settings["metrics_address"] == "0.0.0.0"


def _port(service: str, probe_port: int | str) -> int:
    if isinstance(probe_port, int):
        return probe_port
    [port] = [p for p in container(service)["ports"] if p.get("name") == probe_port]
    return int(port["containerPort"])


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_liveness_asks_the_metrics_server_which_needs_no_broker(worker: str) -> None:
    probe = container(worker)["livenessProbe"]["httpGet"]
    assert probe["path"] == "/metrics"
    assert _port(worker, probe["port"]) == config()["metrics_port"]


def test_gateway_liveness_does_not_depend_on_the_broker() -> None:
    """/healthz is 503 while the broker is away: readiness only, never liveness."""
    gateway = container("gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/version"
    # It serves only once it reached the broker: a startup window before liveness counts.
    startup = gateway["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([KMG]i)?", quantity).groups()  # type: ignore[union-attr]
    return float(number) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[unit]


@pytest.mark.parametrize("service", SERVICES)
def test_memory_requests_follow_the_measured_rss(service: str) -> None:
    resources = container(service)["resources"]
    request = mebibytes(resources["requests"]["memory"])
    limit = mebibytes(resources["limits"]["memory"])
    assert IDLE_RSS_MIB <= request <= limit
    assert limit >= PEAK_RSS_MIB.get(service, 2 * IDLE_RSS_MIB) * 1.2  # headroom above peak


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_each_service_where_it_serves_metrics(service: str) -> None:
    annotations = deployment(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {int(p["containerPort"]) for p in container(service)["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    if service != "gateway":  # the gateway serves /metrics on its API port
        assert int(annotations["prometheus.io/port"]) == config()["metrics_port"]


def test_every_volume_mounted_is_declared() -> None:
    for name, dep in of_kind("Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        declared = {v["name"] for v in pod["volumes"]}
        for c in pod["containers"] + pod.get("initContainers", []):
            assert {m["name"] for m in c.get("volumeMounts", [])} <= declared, name
