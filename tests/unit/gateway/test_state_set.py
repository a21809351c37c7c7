"""PUT /datasets/{id}/status: admins set a dataset's "Archival state" by hand; the audit trail
keeps who, when, old -> new and why; anyone else hears 404 and nothing changes."""

from __future__ import annotations

import asyncio
from typing import Any

from datastore_common.messages import ArchivalStateSet
from datastore_gateway.ledger import Ledger
from tests.unit.gateway.conftest import Gateway

FOLDER = "instrument/20XX/ABC123-1/scan/scan_0000"
ALICE = {"username": "alice", "password": "alice-pw", "auth": "db"}  # not an admin
BODY = {"state": "FAILED", "reason": "tape lost", "deletion_date": "2030-01-31"}


def dataset(gateway: Gateway, states: list[str | None], readers: set[str] | None = None) -> None:
    ids = gateway.selections.add_dataset(
        1, 10, [f"{FOLDER}/f{i}.nxs" for i in range(len(states))], first_datafile_id=100,
        readers=readers,
    )  # fmt: skip
    for datafile_id, state in zip(ids, states, strict=True):
        gateway.selections.datafiles[datafile_id].state = state


def put(gateway: Gateway, body: dict[str, Any], who: dict[str, str] | None = None) -> Any:
    answer = gateway.client.put(
        "/datasets/10/status", json=body, headers=gateway.bearer(**(who or {}))
    )
    return answer.status_code, answer.json()


def trail(gateway: Gateway) -> list[Any]:
    ledger = gateway.app.state.gateway.ledger
    assert isinstance(ledger, Ledger)
    return asyncio.run(ledger.audit_trail(10))


def test_an_admin_sets_the_state_with_an_audit_trail(gateway: Gateway) -> None:
    dataset(gateway, ["FINISHED", "FINISHED"])
    code, body = put(gateway, BODY)
    assert code == 202, body
    assert body["old_state"] == "FINISHED" and body["state"] == "FAILED"
    assert body["set_by"] == "simple/root" and body["datafiles"] is True
    assert body["deletion_date"] == "2030-01-31" and body["reason"] == "tape lost"
    [published] = gateway.publisher.published
    message = published.data
    assert isinstance(message, ArchivalStateSet)
    assert (message.dataset_id, message.state, message.datafiles) == (10, "FAILED", True)
    assert message.change_id == body["change_id"] == published.correlation_id
    assert str(message.deletion_date) == "2030-01-31"
    [entry] = trail(gateway)
    assert (entry.who, entry.old_state, entry.new_state, entry.reason) == (
        "simple/root",
        "FINISHED",
        "FAILED",
        "tape lost",
    )
    assert entry.change_id == body["change_id"] and entry.deletion_date == "2030-01-31"


def test_anyone_else_hears_404_and_nothing_is_set(gateway: Gateway) -> None:
    dataset(gateway, ["FAILED"])  # readable by everyone
    code, body = put(gateway, BODY, ALICE)
    assert code == 404 and "no dataset 10" in body["detail"]
    assert gateway.publisher.published == [] and trail(gateway) == []


def test_an_admin_icat_does_not_let_read_it_hears_404(gateway: Gateway) -> None:
    dataset(gateway, ["FAILED"], readers={"db/alice"})
    code, body = put(gateway, BODY)
    assert code == 404 and "Dataset 10" in body["detail"]
    assert gateway.publisher.published == [] and trail(gateway) == []


def test_a_state_that_cannot_be_set_or_no_reason_is_422(gateway: Gateway) -> None:
    dataset(gateway, ["FAILED"])
    code, body = put(gateway, {"state": "ACTIVE", "reason": "x"})
    assert code == 422 and "body.state" in body["reason"]
    code, body = put(gateway, {"state": "FINISHED"})
    assert code == 422 and "body.reason" in body["reason"]
    assert gateway.publisher.published == []


def test_setting_needs_a_session(gateway: Gateway) -> None:
    assert gateway.client.put("/datasets/10/status", json=BODY).status_code == 401
