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
