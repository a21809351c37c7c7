"""The workers' metrics server listens where the settings say (a pod: 0.0.0.0)."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from datastore_common.errors import ConfigurationError
from datastore_common.metrics import start_metrics_server
from datastore_common.settings import load_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_address_defaults_to_loopback_and_takes_any_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATASTORE_CONFIG", raising=False)
    assert str(load_settings().metrics_address) == "127.0.0.1"
    monkeypatch.setenv("DATASTORE__METRICS_ADDRESS", "0.0.0.0")
    assert str(load_settings().metrics_address) == "0.0.0.0"
    monkeypatch.setenv("DATASTORE__METRICS_ADDRESS", "every-interface")
    with pytest.raises(ConfigurationError, match="metrics_address"):
        load_settings()


def test_metrics_server_serves_on_the_address_given() -> None:
    port = free_port()
    start_metrics_server(port, address="0.0.0.0")
    # Reachable through an address other than loopback's 127.0.0.1: bound to every interface.
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5) as response:
        assert b"datastore_messages_handled_total" in response.read()
