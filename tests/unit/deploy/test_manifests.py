"""The compose file and Kubernetes manifests name real commands and valid settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from datastore_common.errors import ConfigurationError
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


#: What each service reads besides .env: its own broker user, and the ICAT functional password
#: where it uses it (docs/security.md, "Secrets").
COMPOSE_SECRETS = {
    "gateway": [".env", ".env.icat", "broker/datastore-gateway.env"],
    "icat-writer": [".env", ".env.icat", "broker/datastore-icat-writer.env"],
    "fts-submitter": [".env", "broker/datastore-fts-submitter.env"],
    "status-poller": [".env", "broker/datastore-status-poller.env"],
}


def env_lines(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_compose_gives_each_service_only_its_own_secrets() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {name: spec.get("env_file") for name, spec in services.items() if "command" in spec} == (
        COMPOSE_SECRETS
    )
    mounts = " ".join(services["icat-writer"].get("volumes", []))
    assert "x509" not in mounts, "the icat-writer does not use the X.509 credential"
    example = env_lines((COMPOSE.parent / "env.example").read_text())
    assert not any("PASSWORD" in key or "BROKER__URL" in key for key in example)


def test_compose_broker_takes_amqps_only_from_definitions() -> None:
    conf = (COMPOSE.parent / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "listeners.tcp = none" in conf
    assert "listeners.ssl.default = 5671" in conf
    assert "load_definitions" in conf


def test_compose_environment_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    example = env_lines((COMPOSE.parent / "env.example").read_text())
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    monkeypatch.chdir(COMPOSE.parent)  # no config.yaml here: environment only
    for name, files in COMPOSE_SECRETS.items():
        user = f"datastore-{name}"
        secrets = {  # as datastore-ops broker-accounts and the site write them
            "DATASTORE__BROKER__URL": f"amqps://{user}:Xq7-long-random@rabbitmq:5671/",
            **({"DATASTORE__ICAT__PASSWORD": "Icat-long-random-9"} if ".env.icat" in files else {}),
        }
        environment = {**example, **services[name]["environment"], **secrets}
        with monkeypatch.context() as scoped:
            for key, value in environment.items():
                if key.startswith("DATASTORE__"):
                    scoped.setenv(key, value)
            settings = load_settings()  # raises ConfigurationError naming a wrong key
        assert str(settings.fts3.endpoint).startswith("https://fts3.example.org")
        assert settings.broker.users[user] == name
        assert settings.broker.user == user


def test_compose_refuses_the_services_without_their_broker_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    monkeypatch.chdir(COMPOSE.parent)
    environment = {
        **env_lines((COMPOSE.parent / "env.example").read_text()),
        **services["gateway"]["environment"],
        "DATASTORE__BROKER__URL": "amqps://guest:guest@rabbitmq:5671/",
    }
    for key, value in environment.items():
        if key.startswith("DATASTORE__"):
            monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=r"broker\.url"):
        load_settings()


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
    # As the service's Secret gives them (see the manifest's header).
    monkeypatch.setenv(
        "DATASTORE__BROKER__URL", "amqps://datastore-gateway:Xq7-long-random@rabbitmq:5671/"
    )
    monkeypatch.setenv("DATASTORE__ICAT__PASSWORD", "Icat-long-random-9")
    settings = load_settings()
    assert settings.broker.users["datastore-gateway"] == "gateway"
    assert settings.gateway.state_db.startswith("postgresql://")
    assert settings.tape_archive == "root://tape.example.org:1094//"


#: What each service reads (docs/security.md, "Secrets"): the broker URL, the ICAT functional
#: password, the X.509 credential for FTS; each service its own broker user.
SECRETS_READ = {
    "datastore-gateway": {"datastore-gateway-broker", "datastore-icat", "datastore-x509"},
    "datastore-icat-writer": {"datastore-icat-writer-broker", "datastore-icat"},
    "datastore-fts-submitter": {"datastore-fts-submitter-broker", "datastore-x509"},
    "datastore-status-poller": {"datastore-status-poller-broker", "datastore-x509"},
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


def test_kubernetes_serves_the_api_over_tls() -> None:
    [ingress] = [d for d in kubernetes_documents() if d["kind"] == "Ingress"]
    assert ingress["spec"]["tls"][0]["secretName"]
