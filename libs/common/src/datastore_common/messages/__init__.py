"""The wire contract: pydantic models of every message, in one envelope."""

from __future__ import annotations

from datastore_common.messages.answers import ArchiveAccepted, ArchiveRejected, RejectionClass
from datastore_common.messages.completion import EndState, FailureSummary, RequestCompleted
from datastore_common.messages.envelope import (
    Envelope,
    Payload,
    binding_key,
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
from datastore_common.messages.notify import NotifyTargets, check_email, check_webhook
from datastore_common.messages.transfer import (
    ArchivalStateSet,
    ArchiveRegistered,
    ArchiveRequested,
    ArchiveRetryRequested,
    DatafileKey,
    FailureClass,
    FileState,
    LeftOutFile,
    PlannedJob,
    PlannedTransfer,
    RequestDelayed,
    RequestFailed,
    RestoreRequested,
    SettableState,
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
        ArchiveRetryRequested,
        ArchivalStateSet,
        RestoreRequested,
        TransferSubmitted,
        TransferStatus,
        TransferTracked,
        RequestFailed,
        RequestDelayed,
        RequestCompleted,
        ArchiveAccepted,
        ArchiveRejected,
    )
}

__all__ = [
    "PAYLOAD_TYPES",
    "ArchivalStateSet",
    "ArchiveAccepted",
    "ArchiveRegistered",
    "ArchiveRejected",
    "ArchiveRequested",
    "ArchiveRetryRequested",
    "DatafileKey",
    "DatafileSpec",
    "DatasetSpec",
    "EndState",
    "Envelope",
    "FailureClass",
    "FailureSummary",
    "FileState",
    "InvestigationSpec",
    "LeftOutFile",
    "NamedRef",
    "NotifyTargets",
    "ParameterSpec",
    "ParameterTypeRef",
    "Payload",
    "PlannedJob",
    "PlannedTransfer",
    "RejectionClass",
    "RequestCompleted",
    "RequestDelayed",
    "RequestFailed",
    "RestoreRequested",
    "SampleSpec",
    "SampleTypeRef",
    "SettableState",
    "TransferKind",
    "TransferStatus",
    "TransferSubmitted",
    "TransferTracked",
    "binding_key",
    "check_email",
    "check_unique_investigations",
    "check_webhook",
    "envelope_json_schema",
    "job_failed",
    "parse_envelope",
    "wrap",
]
