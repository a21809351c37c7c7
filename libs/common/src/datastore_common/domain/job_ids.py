"""Deterministic FTS3 job ids.

FTS3 names a job submitted with ``id_generator="deterministic"`` and a ``sid`` as
``uuid5(uuid5(BASE_ID, vo), sid)`` (cern-fts/fts-rest-flask ``JobBuilder``), where ``vo`` is the
submitter's first VO (for a certificate without VOMS: its delegation id). Computing the same id
here lets the gateway name jobs before they exist and makes resubmission harmless.
"""

from __future__ import annotations

import uuid

#: FTS3's namespace for deterministic ids (fts-rest-flask ``JobBuilder_utils.BASE_ID``).
FTS3_BASE_ID = uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9")


def fts_vo_id(vo: str) -> uuid.UUID:
    """The per-VO namespace FTS3 derives from ``FTS3_BASE_ID``."""
    return uuid.uuid5(FTS3_BASE_ID, vo)


def fts_job_id(vo: str, sid: str) -> str:
    """The job id FTS3 gives a deterministic submission with this ``sid`` from this ``vo``."""
    if not vo:
        raise ValueError("vo must not be empty")
    if not sid:
        raise ValueError("sid must not be empty")
    return str(uuid.uuid5(fts_vo_id(vo), sid))


def job_sid(request_id: str, batch_index: int) -> str:
    """The stable ``sid`` of batch ``batch_index`` (0-based) of request ``request_id``."""
    if not request_id:
        raise ValueError("request_id must not be empty")
    if batch_index < 0:
        raise ValueError(f"batch_index must be >= 0, got {batch_index}")
    return f"{request_id}:{batch_index}"
