"""Example envelopes of what an instrument publishes and receives (AsyncAPI ``examples``).

Built from the models, so an example that no longer validates fails ``make asyncapi`` and the
unit tests rather than misleading an integrator.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from datastore_common.messages.answers import ArchiveAccepted, ArchiveRejected
from datastore_common.messages.completion import RequestCompleted
from datastore_common.messages.envelope import Payload, wrap
from datastore_common.messages.metadata import InvestigationSpec
from datastore_common.messages.transfer import ArchiveRequested

_REQUEST_ID = "0b6f3a8e-6c1d-4c8e-9a55-3f1d2b7c9e10"
_REQUEST_MESSAGE_ID = uuid.UUID("7d2c1e0a-5b4f-4a3e-8d9c-1a2b3c4d5e6f")
_INSTRUMENT_USER = "instrument-abc"
_OWNER = "simple/abc-daq"
_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_JOB_ID = "5f1b7a4c-2d3e-5f60-8a9b-0c1d2e3f4a5b"

#: The seed's investigation, with two datafiles: what an instrument publishes (no ``jobs``:
#: the icat-writer plans them).
SEED_INVESTIGATION: dict[str, Any] = {
    "facility": {"name": "facility"},
    "investigationType": {"name": "type"},
    "instrument": {"name": "instrument"},
    "facilityCycle": {"name": "20XX"},
    "name": "ABC123",
    "visitId": "1",
    "title": "Title",
    "datasets": [
        {
            "name": "scan_0000",
            "datasetType": {"name": "scan"},
            "datafiles": [
                {"name": "file_0000.nxs", "fileSize": 262144000},
                {"name": "file_0001.nxs", "fileSize": 262144000},
            ],
        }
    ],
}


def _envelope(data: Payload, *, source: str, user: str | None, id: uuid.UUID) -> dict[str, Any]:
    envelope = wrap(data, source=source, correlation_id=_REQUEST_ID, user=user, id=id)
    envelope = envelope.model_copy(update={"time": _TIME})
    dumped: dict[str, Any] = envelope.model_dump(mode="json", exclude_none=True)
    return dumped


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(_REQUEST_MESSAGE_ID, name)


def examples() -> dict[str, list[dict[str, Any]]]:
    """Message type -> AsyncAPI message examples ({name, summary, payload})."""
    requested = ArchiveRequested(
        request_id=_REQUEST_ID,
        investigations=[InvestigationSpec.model_validate(SEED_INVESTIGATION)],
    )
    accepted = ArchiveAccepted(
        request_id=_REQUEST_ID,
        instrument=_INSTRUMENT_USER,
        request_message_id=str(_REQUEST_MESSAGE_ID),
        owner=_OWNER,
        job_ids=[_JOB_ID],
        status_url=f"http://gateway.example:8000/requests/{_REQUEST_ID}",
        datasets=[
            {"investigation": "ABC123", "visit_id": "1", "dataset": "scan_0000", "datafiles": 2}
        ],
    )
    not_allowed = ArchiveRejected(
        request_id=_REQUEST_ID,
        instrument=_INSTRUMENT_USER,
        request_message_id=str(_REQUEST_MESSAGE_ID),
        rejection="not_allowed",
        reason="refused: 'instrument-abc' may archive only for instrument, not for other",
    )
    unknown = ArchiveRejected(
        request_id=_REQUEST_ID,
        instrument=_INSTRUMENT_USER,
        rejection="unknown_names",
        reason="unknown datasetType 'scna' in facility 'facility'",
    )
    completed = RequestCompleted(
        request_id=_REQUEST_ID,
        kind="archive",
        owner=_OWNER,
        state="FINISHED",
        files={"FINISHED": 2},
        files_total=2,
        bytes_total=524288000,
        bytes_done=524288000,
        status_url=f"http://gateway.example:8000/requests/{_REQUEST_ID}",
        completed_at=_TIME,
        instrument=_INSTRUMENT_USER,
    )
    return {
        ArchiveRequested.TYPE: [
            {
                "name": "instrument",
                "summary": "An instrument's request (no jobs: the icat-writer plans them); "
                "publish with user_id = its broker user and a message_id",
                "payload": _envelope(
                    requested, source=_INSTRUMENT_USER, user=_OWNER, id=_REQUEST_MESSAGE_ID
                ),
            }
        ],
        ArchiveAccepted.TYPE: [
            {
                "name": "accepted",
                "summary": f"routing key {ArchiveAccepted.TYPE}.{_INSTRUMENT_USER}",
                "payload": _envelope(
                    accepted, source="icat-writer", user=_OWNER, id=_id("accepted")
                ),
            }
        ],
        ArchiveRejected.TYPE: [
            {
                "name": "not_allowed",
                "summary": "an instrument its account was not given",
                "payload": _envelope(not_allowed, source="icat-writer", user=None, id=_id("r1")),
            },
            {
                "name": "unknown_names",
                "summary": "a name ICAT does not know",
                "payload": _envelope(unknown, source="icat-writer", user=_OWNER, id=_id("r2")),
            },
        ],
        RequestCompleted.TYPE: [
            {
                "name": "instrument",
                "summary": f"routing key {RequestCompleted.TYPE}.{_INSTRUMENT_USER}",
                "payload": _envelope(completed, source="gateway", user=_OWNER, id=_id("done")),
            }
        ],
    }
