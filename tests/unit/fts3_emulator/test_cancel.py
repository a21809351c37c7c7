"""The FTS3 emulator's cancel as FTS3 answers it (``DELETE /jobs/{id}``), in process: no XRootD,
the engine replaced by a recorder (that a cancelled copy's partial file is removed is
tests/integration/fts3_emulator/test_transfers.py's, on real storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fts3_emulator.api import create_app
from fts3_emulator.config import EmulatorSettings
from fts3_emulator.store import Store

TOKENS = {
    "ours": {"user_dn": "/CN=datastore", "vo": "datastore"},
    "theirs": {"user_dn": "/CN=someone", "vo": "other"},
}


class RecordingEngine:
    """What the API asks of the engine: nothing moves on its own here."""

    def __init__(self) -> None:
        self.canceled: list[int] = []
        self.refreshed: list[str] = []

    def wake(self) -> None:
        pass

    def cancel_files(self, file_ids: Any) -> None:
        self.canceled += list(file_ids)

    def refresh_job(self, job_id: str) -> None:
        self.refreshed.append(job_id)


@pytest.fixture
def emulator(tmp_path: Path) -> tuple[TestClient, Store, RecordingEngine]:
    settings = EmulatorSettings(db_path=tmp_path / "fts3.sqlite", tokens=TOKENS)
    store = Store(settings.db_path)
    engine = RecordingEngine()
    app = create_app(settings, store, engine)  # type: ignore[arg-type]
    return TestClient(app), store, engine  # no lifespan: the engine never starts


def bearer(token: str = "ours") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(client: TestClient, files: int = 3) -> str:
    body = {
        "files": [
            {"sources": [f"root://idc//f{i}"], "destinations": [f"root://udc//f{i}"]}
            for i in range(files)
        ],
        "params": {"id_generator": "deterministic", "sid": "r:0"},
    }
    answer = client.post("/jobs", json=body, headers=bearer())
    assert answer.status_code == 200, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


def test_files_not_yet_done_end_canceled_and_the_job_too(
    emulator: tuple[TestClient, Store, RecordingEngine],
) -> None:
    client, store, engine = emulator
    job_id = submit(client)
    first, second, third = store.files_of(job_id)
    store.update_file(first["file_id"], file_state="FINISHED")
    store.update_file(second["file_id"], file_state="ACTIVE")

    answer = client.delete(f"/jobs/{job_id}", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert answer.json()["job_state"] == "CANCELED"
    assert answer.json()["reason"] == "Job canceled by the user"
    assert [f["file_state"] for f in store.files_of(job_id)] == ["FINISHED", "CANCELED", "CANCELED"]
    # The running copy is stopped (and its partial destination removed) by the engine.
    assert engine.canceled == [second["file_id"], third["file_id"]]
    files = client.get(f"/jobs/{job_id}/files", headers=bearer()).json()
    assert [f["reason"] for f in files][1:] == ["Job canceled by the user"] * 2

    again = client.delete(f"/jobs/{job_id}", headers=bearer())
    assert again.status_code == 200
    assert again.json()["http_status"] == "304 Not Modified"
    assert engine.canceled == [second["file_id"], third["file_id"]]  # nothing cancelled twice


def test_an_unknown_job_is_404_and_another_users_403(
    emulator: tuple[TestClient, Store, RecordingEngine],
) -> None:
    client, store, _ = emulator
    job_id = submit(client)
    assert (
        client.delete("/jobs/8d0f6a8e-5b5e-5d2c-9a57-3c1e2f4b6a70", headers=bearer()).status_code
        == 404
    )
    assert client.delete(f"/jobs/{job_id}", headers=bearer("theirs")).status_code == 403
    assert {f["file_state"] for f in store.files_of(job_id)} == {"SUBMITTED"}
