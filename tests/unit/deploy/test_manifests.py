"""The compose file and Kubernetes manifests name real commands and valid settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from datastore_common.settings import load_settings

REPO = Path(__file__).parents[3]
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
KUBERNETES = REPO / "deploy" / "kubernetes" / "datastore.yaml"


def console_scripts() -> set[str]:
    scripts: set[str] = set()
    for pyproject in (REPO / "services").glob("*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


def kubernetes_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(KUBERNETES.read_text()) if doc]


def test_compose_services_run_our_console_scripts() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    commands = {name: spec["command"][0] for name, spec in services.items() if "command" in spec}
    assert commands == {
        "gateway": "datastore-gateway",
        "icat-writer": "datastore-icat-writer",
        "fts-submitter": "datastore-fts-submitter",
        "status-poller": "datastore-status-poller",
    }
    assert set(commands.values()) <= console_scripts()


def test_compose_environment_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE.parent / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    monkeypatch.chdir(COMPOSE.parent)  # no config.yaml here: environment only
    for name in ("gateway", "icat-writer"):
        environment = {**example, **services[name]["environment"]}
        for key, value in environment.items():
            if key.startswith("DATASTORE__"):
                monkeypatch.setenv(key, value.replace("${RABBITMQ_PASSWORD}", "pw"))
        settings = load_settings()  # raises ConfigurationError naming a wrong key
        assert str(settings.fts3.endpoint).startswith("https://fts3.example.org")


def test_kubernetes_deployments_run_our_console_scripts() -> None:
    deployments = [d for d in kubernetes_documents() if d["kind"] == "Deployment"]
    commands = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"][0]
        for d in deployments
    }
    assert set(commands.values()) == {
        "datastore-gateway",
        "datastore-icat-writer",
        "datastore-fts-submitter",
        "datastore-status-poller",
    }
    assert set(commands.values()) <= console_scripts()
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels


def test_kubernetes_config_map_is_a_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map = next(d for d in kubernetes_documents() if d["kind"] == "ConfigMap")
    config = tmp_path / "config.yaml"
    config.write_text(config_map["data"]["config.yaml"])
    monkeypatch.setenv("DATASTORE_CONFIG", str(config))
    settings = load_settings()
    assert settings.gateway.state_db.startswith("postgresql://")
    assert settings.tape_archive == "root://tape.example.org:1094//"


#: What each service reads (docs/security.md, "Secrets"): the broker URL, the ICAT functional
#: password, the X.509 credential for FTS.
SECRETS_READ = {
    "datastore-gateway": {"datastore-broker", "datastore-icat", "datastore-x509"},
    "datastore-icat-writer": {"datastore-broker", "datastore-icat"},
    "datastore-fts-submitter": {"datastore-broker", "datastore-x509"},
    "datastore-status-poller": {"datastore-broker", "datastore-x509"},
}


def test_kubernetes_gives_each_service_only_the_secrets_it_reads() -> None:
    given = {}
    for deployment in (d for d in kubernetes_documents() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        env_secrets = {
            source["secretRef"]["name"]
            for container in pod["containers"]
            for source in container.get("envFrom", [])
        }
        volume_secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        given[deployment["metadata"]["name"]] = env_secrets | volume_secrets
    assert given == SECRETS_READ


def test_kubernetes_x509_key_reaches_the_services_private() -> None:
    """A Secret volume is group-readable under fsGroup, which the services refuse: an init
    container copies the files 0600 into the memory volume the service reads them from."""
    config_map = next(d for d in kubernetes_documents() if d["kind"] == "ConfigMap")
    key_path = yaml.safe_load(config_map["data"]["config.yaml"])["x509_user_key"]
    for deployment in (d for d in kubernetes_documents() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        if not any(
            v.get("secret", {}).get("secretName") == "datastore-x509" for v in pod["volumes"]
        ):
            continue
        [init] = pod["initContainers"]
        assert init["command"][:3] == ["install", "-m", "0600"]
        assert init["command"][-1] == str(Path(key_path).parent) + "/"
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "x509"]
        assert key_path.startswith(mount["mountPath"] + "/")
        assert {"name": "x509", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
