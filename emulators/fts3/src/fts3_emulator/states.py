"""Pure FTS3 job/file state logic: state sets, job state derivation, deterministic ids.

Mirrors the FTS3 server (cern-fts/fts3 ``MySqlAPI::updateJobTransferStatusInternal`` and
fts-rest-flask ``JobBuilder``) so clients see the same aggregate answers as from a real FTS.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

# fts-rest-flask lib/JobBuilder_utils.py
FTS_BASE_ID = uuid.UUID("urn:uuid:01874efb-4735-4595-bc9c-591aef8240c9")

JOB_ACTIVE_STATES = frozenset(
    {
        "STAGING",
        "SUBMITTED",
        "READY",
        "ACTIVE",
        "DELETE",
        "ARCHIVING",
        "QOS_TRANSITION",
        "QOS_REQUEST_SUBMITTED",
    }
)
JOB_TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"})
FILE_TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED"})
FILE_ACTIVE_STATES = frozenset(
    {
        "SUBMITTED",
        "READY",
        "ACTIVE",
        "STAGING",
        "STARTED",
        "ARCHIVING",
        "ON_HOLD",
        "ON_HOLD_STAGING",
        "FORCE_START",
        "TOKEN_PREP",
        "QOS_TRANSITION",
        "QOS_REQUEST_SUBMITTED",
    }
)

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def utc_now() -> datetime:
    """Naive UTC now, the way FTS stores and prints every timestamp."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def format_timestamp(moment: datetime | None) -> str | None:
    return moment.strftime(TIMESTAMP_FORMAT) if moment else None


def is_job_terminal(job_state: str) -> bool:
    return job_state in JOB_TERMINAL_STATES


def derive_job_state(file_states: Iterable[str]) -> str:
    """The job state FTS3 shows for a job whose files are in ``file_states``.

    Terminal: all FINISHED → FINISHED; some FINISHED and some FAILED → FINISHEDDIRTY; else any
    FAILED → FAILED; else any CANCELED → CANCELED. While anything is pending: ARCHIVING when every
    pending file is archiving, STAGING while files stage and none moves yet, ACTIVE once any file
    is being copied (or some files are already done), SUBMITTED before that.
    """
    states = list(file_states)
    if not states:
        return "FAILED"
    finished = states.count("FINISHED")
    failed = states.count("FAILED")
    canceled = states.count("CANCELED")
    pending = [s for s in states if s not in FILE_TERMINAL_STATES]
    if not pending:
        if finished and failed:
            return "FINISHEDDIRTY"
        if finished == len(states):
            return "FINISHED"
        if failed:
            return "FAILED"
        if canceled:
            return "CANCELED"
        return "FAILED"
    if all(s == "ARCHIVING" for s in pending):
        return "ARCHIVING"
    if any(s in {"ACTIVE", "READY", "ARCHIVING"} for s in pending):
        return "ACTIVE"
    if any(s in {"STAGING", "STARTED"} for s in pending):
        return "STAGING"
    if finished or failed or canceled:
        return "ACTIVE"
    return "SUBMITTED"


def terminal_job_reason(job_state: str) -> str | None:
    if job_state in {"FINISHEDDIRTY", "FAILED"}:
        return "One or more files failed. Please have a look at the details for more information"
    return None


def delegation_id_for(user_dn: str, fqans: Iterable[str] = ()) -> str:
    """FTS delegation id: sha1 of the DN followed by the FQANs, first 16 hex digits."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(user_dn.encode("utf-8"))
    for fqan in fqans:
        digest.update(fqan.encode("utf-8"))
    return digest.hexdigest()[:16]


def deterministic_job_id(vo_name: str, sid: str) -> str:
    """FTS ``id_generator=deterministic``: uuid5(uuid5(BASE_ID, vo), sid)."""
    return str(uuid.uuid5(uuid.uuid5(FTS_BASE_ID, vo_name), str(sid)))


def random_job_id() -> str:
    return str(uuid.uuid1())


def parse_user_checksum(checksum: str | None) -> tuple[str, str | None]:
    """Split a submitted checksum into (algorithm, lowercase hex value or None).

    Accepts "adler32:0a1b2c3d", "ADLER32:0A1B2C3D" and a bare "ADLER32" (algorithm only).
    """
    if not checksum:
        return "adler32", None
    algorithm, _, value = checksum.partition(":")
    value = value.strip().lower()
    return algorithm.strip().lower() or "adler32", (value.zfill(8) if value else None)


def verify_checksum_mode(verify_checksum: object, checksum_given: bool) -> str:
    """FTS stores the first letter: b(oth), s(ource), t(arget), n(one)."""
    if verify_checksum is True:
        return "b"
    if verify_checksum is False or verify_checksum is None:
        return "t" if checksum_given else "n"
    text = str(verify_checksum).strip().lower()
    if text in {"true", "1", "yes"}:
        return "b"
    if text in {"false", "0", "no", ""}:
        return "t" if checksum_given else "n"
    return text[0] if text[0] in "bstn" else "b"


def storage_element(url: str) -> str:
    """``root://host:port//path`` → ``root://host:port`` as FTS names a storage element."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.split('/', 1)[0]}"


def max_attempts(retry: int | None, server_default: int = 0) -> int:
    """Number of copy attempts: ``retry`` < 0 → 1, 0 → server default + 1, n → n + 1."""
    if retry is None or retry == 0:
        return server_default + 1
    if retry < 0:
        return 1
    return retry + 1
