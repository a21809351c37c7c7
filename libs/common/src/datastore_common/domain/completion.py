"""When a request ends: what is said (``request_completed``), under which id, and how it is
delivered (webhook signatures, which hosts a webhook may name, retries, the e-mail's words).
Pure: the gateway's ledger and notifier do the I/O.

A request's completion is recorded once, in the transaction that moves it to its end, as one
outbox row per channel (the broker, a webhook, an e-mail); the notifier sends each and marks it
sent. A send may be repeated (a replica stopped between sending and marking), so everything
sent carries ``completion_message_id``: the same for every repetition, for receivers to
de-duplicate by.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from datastore_common.domain.states import CANCELED, FAILED, FINISHED
from datastore_common.messages import (
    EndState,
    FailureClass,
    FailureSummary,
    RequestCompleted,
    TransferKind,
)

#: Namespace of completion message ids (uuid5 of the request id: one id per request).
_COMPLETION_NAMESPACE = uuid.UUID("5b0f6a52-1c1e-4d55-9a57-7d3c2f0e9a11")
#: Header names of a webhook call.
SIGNATURE_HEADER = "X-Datastore-Signature"
TIMESTAMP_HEADER = "X-Datastore-Timestamp"
DELIVERY_HEADER = "X-Datastore-Delivery"
#: A receiver should refuse a signed call older (or newer) than this: a replay.
SIGNATURE_TOLERANCE_SECONDS = 300
#: File failure reasons quoted in a summary, at most.
REASONS_QUOTED = 3


def completion_message_id(request_id: str) -> uuid.UUID:
    """The one message id of a request's completion, whoever sends it and however often."""
    return uuid.uuid5(_COMPLETION_NAMESPACE, request_id)


def status_url(public_url: str, request_id: str) -> str:
    return f"{public_url.rstrip('/')}/requests/{request_id}"


def failure_summary(
    state: str,
    failure: tuple[FailureClass, str] | None,
    files_failed: int,
    files_total: int,
    reasons: Sequence[str],
) -> FailureSummary | None:
    """Why a request did not simply finish: its own failure when it was given up, else how
    many files failed and the first reasons; None for a request FINISHED."""
    if failure is not None:
        return FailureSummary(failure_class=failure[0], reason=failure[1])
    if state == FINISHED or (files_failed == 0 and state != CANCELED):
        return None
    words = f"{files_failed} of {files_total} files {'canceled' if state == CANCELED else 'failed'}"
    quoted = list(dict.fromkeys(r for r in reasons if r))[:REASONS_QUOTED]
    return FailureSummary(
        failure_class=None, reason=f"{words}: {'; '.join(quoted)}" if quoted else words
    )


def request_completed(
    *,
    request_id: str,
    kind: TransferKind,
    owner: str | None,
    state: EndState,
    file_counts: Mapping[str, tuple[int, int]],
    failure: tuple[FailureClass, str] | None,
    reasons: Sequence[str],
    public_url: str,
    completed_at: datetime,
    instrument: str | None = None,
    copies_until: datetime | None = None,
) -> RequestCompleted:
    """The ``request.completed`` of a request that ended in ``state``, given its files
    counted by state ({state: (files, bytes)}) and the reasons of some that failed."""
    files_total = sum(files for files, _ in file_counts.values())
    files_failed = sum(file_counts.get(s, (0, 0))[0] for s in (FAILED, CANCELED))
    return RequestCompleted(
        request_id=request_id,
        kind=kind,
        owner=owner,
        state=state,
        files={s: files for s, (files, _) in sorted(file_counts.items()) if files},
        files_total=files_total,
        bytes_total=sum(size for _, size in file_counts.values()),
        bytes_done=file_counts.get(FINISHED, (0, 0))[1],
        failure=failure_summary(state, failure, files_failed, files_total, reasons),
        status_url=status_url(public_url, request_id),
        completed_at=completed_at,
        instrument=instrument,
        copies_until=copies_until,
    )


# -- webhooks -------------------------------------------------------------------------------


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with the secret over ``"<timestamp>." + body``. The
    timestamp is signed so that an old call cannot be replayed as a new one."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(
    secret: bytes, body: bytes, *, timestamp: int, delivery_id: uuid.UUID
) -> dict[str, str]:
    """The headers of one webhook call of ``body``."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
    }


def verify_signature(
    secret: bytes,
    body: bytes,
    *,
    timestamp: str,
    signed: str,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the signature is ours over this body and timestamp, and the
    timestamp is recent (else a replay)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), signed)


def host_allowed(host: str, allowed: Collection[str]) -> bool:
    """Whether a webhook may name ``host``: any when ``allowed`` is empty, else one named
    exactly, or under one given as ``.example.org``."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for entry in (a.lower().rstrip(".") for a in allowed):
        if entry.startswith(".") and (host.endswith(entry) or host == entry[1:]):
            return True
        if host == entry:
            return True
    return False


# -- retries --------------------------------------------------------------------------------


def retry_delay(attempts: int, delays: Sequence[float], max_attempts: int | None) -> float | None:
    """After ``attempts`` failed tries, how long to wait before the next; None: give up
    (``max_attempts`` None: never). The last delay repeats."""
    if max_attempts is not None and attempts >= max_attempts:
        return None
    return delays[min(max(attempts, 1), len(delays)) - 1]


# -- e-mail ---------------------------------------------------------------------------------


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def email_text(completed: RequestCompleted) -> tuple[str, str]:
    """Subject and body of the e-mail that tells a request ended."""
    subject = f"Datastore {completed.kind} {completed.request_id}: {completed.state}"
    counts = ", ".join(f"{files} {state}" for state, files in completed.files.items()) or "none"
    lines = [
        f"Your {completed.kind} request {completed.request_id} ended {completed.state} "
        f"at {completed.completed_at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
        f"Files: {completed.files_total} ({counts})",
        f"Bytes: {_size(completed.bytes_done)} of {_size(completed.bytes_total)} done",
    ]
    if completed.failure is not None:
        who = (
            f" ({completed.failure.failure_class} error)" if completed.failure.failure_class else ""
        )
        lines.append(f"Failure{who}: {completed.failure.reason}")
    if completed.copies_until is not None:
        lines.append(
            f"The restored copies stay until {completed.copies_until:%Y-%m-%d %H:%M} UTC at least."
        )
    lines += ["", f"Status: {completed.status_url}", ""]
    return subject, "\n".join(lines)
