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
