"""/version, /healthz, /metrics (no authentication) and the request id in answers."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from datastore_common.testing.fakes import FakeSessions, RecordingPublisher
from datastore_gateway.main import create_app
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, make_settings


def test_version_names_package_and_api(gateway: Gateway) -> None:
    answer = gateway.client.get("/version")
    assert answer.status_code == 200
    assert answer.json() == {"name": "datastore-gateway", "version": "0.1.0", "api_version": "1"}


def test_healthz_is_ok_while_the_broker_is_connected(gateway: Gateway) -> None:
    answer = gateway.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "broker_connected": True, "vo": "test-vo"}


def test_healthz_is_503_when_the_broker_is_gone(tmp_path: Path) -> None:
    connected = [True]
    app = create_app(
        make_settings(tmp_path),
        sessions=FakeSessions(),
        publisher=RecordingPublisher(),
        vo="test-vo",
        broker_connected=lambda: connected[0],
    )
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        connected[0] = False
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["broker_connected"] is False


def metric_samples(gateway: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample /metrics shows now, by name and labels."""
    text = gateway.client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_template(gateway: Gateway) -> None:
    # The counters live in the process-wide registry, where earlier tests counted too:
    # what this request adds is the difference between two readings.
    headers = gateway.bearer()
    before = metric_samples(gateway)
    answer = gateway.client.post("/archive", json=seed_body(), headers=headers)
    after = metric_samples(gateway)
    assert answer.status_code == 202, answer.text

    def added(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    http = "datastore_gateway_http_requests_total"
    assert added(http, method="POST", route="/archive", status="202") == 1
    assert added(http, method="POST", route="/login", status="200") == 0
    assert added("datastore_gateway_archive_requests_total", outcome="accepted") == 1
    assert added("datastore_gateway_archive_requests_total", outcome="replayed") == 0
    assert added("datastore_gateway_archive_datafiles_total") == 4  # the seed's datafiles
    assert added("datastore_gateway_session_checks_total", result="checked") == 1


def test_every_answer_carries_a_request_id(gateway: Gateway) -> None:
    generated = gateway.client.get("/version").headers["x-request-id"]
    assert len(generated) == 32
    echoed = gateway.client.get("/version", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


def test_unknown_path_is_404_and_needs_no_session(gateway: Gateway) -> None:
    assert gateway.client.get("/nowhere").status_code == 404
