"""The gateway against its own OpenAPI document: schemathesis generates requests for every
operation (valid ones, and invalid ones), sends them in-process to the app wired to the fakes
with a valid session, and checks that no answer is a 5xx and every answer is one the document
declares (status code, content type, headers, body schema).

Bounded and deterministic: hypothesis is derandomized (its seed comes from the test) and each
operation gets ``MAX_EXAMPLES`` cases per mode, so a run takes seconds and fails the same way
twice. (schemathesis' own pytest loader, ``from_fixture``, does not run on pytest 9: each
operation of the committed document is a parametrized case here instead.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.unit.gateway.conftest import build_gateway

MAX_EXAMPLES = 15
#: Operations whose inputs are costly to generate (the archive body nests four levels deep).
FEWER_EXAMPLES = {"/archive": 3}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: One logged-in archiver (and admin): the session every generated request carries.
SESSION_ID = str(uuid.UUID(int=42))
COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
DOCUMENT = json.loads(COMMITTED.read_text())
#: Every operation, valid requests; and invalid ones where it takes any input.
CASES = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode}")
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    for mode in GenerationMode
    if mode == GenerationMode.POSITIVE
    or operation.get("parameters")
    or operation.get("requestBody")
]


@pytest.fixture
def gateway_schema(tmp_path: Path) -> Iterator[Any]:
    """A fresh gateway per test: the schemathesis plugin ends the app's lifespan after each
    test (and a restarted lifespan would not reopen the stores injected at creation)."""
    harness = build_gateway(tmp_path)
    harness.sessions.sessions[SESSION_ID] = "simple/root"
    yield schemathesis.openapi.from_asgi("/openapi.json", harness.app)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_is_declared_and_none_is_a_server_error(
    gateway_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = gateway_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FEWER_EXAMPLES.get(path, MAX_EXAMPLES),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {SESSION_ID}"}, checks=CHECKS)

    answers_as_documented()


def test_the_document_fuzzed_is_the_committed_one(gateway_schema: Any) -> None:
    """What schemathesis checks the gateway against is what docs/openapi.json promises."""
    assert gateway_schema.raw_schema == DOCUMENT
