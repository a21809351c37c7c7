"""The wire contract: pydantic models of every message, in one envelope."""

from __future__ import annotations

from datastore_common.messages.envelope import (
    Envelope,
    Payload,
    envelope_json_schema,
    parse_envelope,
    wrap,
)
from datastore_common.messages.metadata import (
    DatafileSpec,
    DatasetSpec,
    InvestigationSpec,
    NamedRef,
    ParameterSpec,
    ParameterTypeRef,
    SampleSpec,
    SampleTypeRef,
    check_unique_investigations,
)
from datastore_common.messages.transfer import (
    ArchiveRegistered,
    ArchiveRequested,
    DatafileKey,
    FailureClass,
    FileState,
    PlannedJob,
    PlannedTransfer,
    RequestDelayed,
    RequestFailed,
    RestoreRequested,
    TransferKind,
    TransferStatus,
    TransferSubmitted,
    TransferTracked,
    job_failed,
)

PAYLOAD_TYPES: dict[str, type[Payload]] = {
    model.TYPE: model
    for model in (
        ArchiveRequested,
        ArchiveRegistered,
        RestoreRequested,
        TransferSubmitted,
        TransferStatus,
        TransferTracked,
        RequestFailed,
        RequestDelayed,
    )
}

__all__ = [
    "PAYLOAD_TYPES",
    "ArchiveRegistered",
    "ArchiveRequested",
    "DatafileKey",
    "DatafileSpec",
    "DatasetSpec",
    "Envelope",
    "FailureClass",
    "FileState",
    "InvestigationSpec",
    "NamedRef",
    "ParameterSpec",
    "ParameterTypeRef",
    "Payload",
    "PlannedJob",
    "PlannedTransfer",
    "RequestDelayed",
    "RequestFailed",
    "RestoreRequested",
    "SampleSpec",
    "SampleTypeRef",
    "TransferKind",
    "TransferStatus",
    "TransferSubmitted",
    "TransferTracked",
    "check_unique_investigations",
    "envelope_json_schema",
    "job_failed",
    "parse_envelope",
    "wrap",
]
