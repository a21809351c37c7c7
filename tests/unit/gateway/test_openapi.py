"""The OpenAPI document: committed in docs/openapi.json, current, with a working Authorize."""

from __future__ import annotations

import json
from pathlib import Path

from datastore_gateway.__main__ import main, openapi_document
from tests.unit.gateway.conftest import Gateway

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text() == openapi_document(), (
        "docs/openapi.json is stale: run `.venv/bin/datastore-gateway openapi`"
    )


def test_openapi_command_writes_the_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    main(["openapi", "--output", str(target)])
    assert target.read_text() == openapi_document()


def test_bearer_scheme_guards_archive_but_not_login_or_health() -> None:
    document = json.loads(openapi_document())
    assert document["components"]["securitySchemes"]["IcatSession"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The ICAT session id from POST /login.",
    }
    paths = document["paths"]
    assert paths["/archive"]["post"]["security"] == [{"IcatSession": []}]
    for open_path in ("/login", "/version", "/healthz", "/metrics"):
        operation = next(iter(paths[open_path].values()))
        assert "security" not in operation
    assert "Idempotency-Key" in {p["name"] for p in paths["/archive"]["post"]["parameters"]}


def test_docs_page_is_served_without_a_session(gateway: Gateway) -> None:
    answer = gateway.client.get("/docs")
    assert answer.status_code == 200
    assert "swagger-ui" in answer.text
    assert gateway.client.get("/openapi.json").status_code == 200


FOLLOWING = {
    "/requests": (401, 422, 503),
    "/datasets": (401, 422, 503),
    "/datasets/{dataset_id}/status": (401, 404, 422, 503),
    "/datasets/{dataset_id}/complete": (401, 404, 422, 503),
    "/datasets/{dataset_id}/percentage": (401, 404, 422, 503),
    "/investigations": (401, 422, 503),
    "/investigations/{investigation_id}/status": (401, 404, 422, 503),
    "/investigations/{investigation_id}/complete": (401, 404, 422, 503),
    "/investigations/{investigation_id}/percentage": (401, 404, 422, 503),
    "/job/{job_id}/complete": (401, 404, 503),
}


def test_following_routes_show_their_answer_and_each_error_with_examples() -> None:
    paths = json.loads(openapi_document())["paths"]
    for path, errors in FOLLOWING.items():
        operation = paths[path]["get"]
        assert operation["security"] == [{"IcatSession": []}], path
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in answer or "$ref" in answer.get("items", {}), path
        for status in errors:
            error = operation["responses"][str(status)]
            assert error["description"], (path, status)
            assert error["content"]["application/json"]["examples"], (path, status)
