"""What the gateway does for a request, free of HTTP: plain async functions with their deps.

Routes turn HTTP into arguments and errors into status codes (``main.py``); everything a
request *means* happens here. The archive path asks ICAT only whether the names a request
uses exist (known names cached for ``gateway.vocabulary_cache_seconds``): the user's session
was checked (and cached) before we get here, and the VO was read at start-up. A restore asks
ICAT once, as the user, what the selection holds; job status asks FTS.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from prometheus_client import Counter
from pydantic import BaseModel

from datastore_common.domain.completion import host_allowed
from datastore_common.domain.ledger import new_request, restored_datasets
from datastore_common.domain.plan import (
    RestoreItem,
    plan_archive,
    plan_restore_jobs,
    restore_transfers,
)
from datastore_common.domain.restore import (
    OnlineCheck,
    Sharing,
    Usage,
    left_out,
    recall_usage,
    share_in_flight,
    sort_by_destination,
)
from datastore_common.domain.restore_queue import (
    Limits,
    Waiting,
    fts_priority,
    never_fits,
    why_wait,
)
from datastore_common.domain.states import FAILED, ended_percentage, is_terminal
from datastore_common.errors import (
    AuthenticationError,
    CredentialError,
    DatastoreError,
    ForbiddenError,
    InvalidRequestError,
    NotArchivedError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    PermanentError,
    TooLargeError,
)
from datastore_common.logging import get_logger
from datastore_common.messages import (
    ArchivalStateSet,
    ArchiveRequested,
    ArchiveRetryRequested,
    LeftOutFile,
    NotifyTargets,
    PlannedTransfer,
    RestoreRequested,
)
from datastore_common.ports import (
    JobProgress,
    Publisher,
    Selections,
    Storage,
    StoredFile,
    TransferService,
    UserSession,
    Vocabulary,
    terms_of,
    unknown_names_text,
)
from datastore_common.settings import DatastoreSettings
from datastore_gateway.following import request_status_of
from datastore_gateway.idempotency import IdempotencyStore, fingerprint_of, run_once, scope_key
from datastore_gateway.ledger import Ledger, QueueRow
from datastore_gateway.metrics import (
    ARCHIVE_REQUESTS,
    ARCHIVED_DATAFILES,
    RESTORE_REQUESTS,
    RESTORED_DATAFILES,
    RESTORES_QUEUED,
    SHARED_DATAFILES,
)
from datastore_gateway.schemas import (
    ArchiveAccepted,
    ArchiveRequest,
    JobComplete,
    JobFile,
    JobPercentage,
    JobState,
    JobStatus,
    RequestStatus,
    RestoreAccepted,
    RestorePreview,
    RestoreQueue,
    RestoreQueueEntry,
    RestoreRequest,
)

log = get_logger(__name__)

#: What ``accept_once`` answers: an archive's or a restore's 202.
Accepted = TypeVar("Accepted", bound=ArchiveAccepted)

#: The broker must confirm within this time, or the client hears 503 (never a 202 unconfirmed).
PUBLISH_TIMEOUT_SECONDS = 10.0
#: ICAT must say within this time whether the request's names exist, or the client hears 503.
VOCABULARY_TIMEOUT_SECONDS = 10.0
#: The user data cache must say within this time which copies of a restore are already
#: there (stat, and adler32 of those present), or the client hears 503.
ONLINE_CHECK_TIMEOUT_SECONDS = 60.0
#: At most this many unknown names are listed in a 422 (the rest are counted).
MAX_UNKNOWN_NAMED = 20


class RequestTooLargeError(TooLargeError):
    """The request is over one of the configured gateway limits (413)."""


class ConfirmationRequiredError(PermanentError):
    """A restore above ``restore.confirm_above_bytes`` without ``confirm=true`` (428)."""


class UnknownNameError(InvalidRequestError):
    """The request names a facility, type, instrument, cycle or format ICAT does not know."""


def is_admin(user: UserSession, settings: DatastoreSettings) -> bool:
    return user.user_name in settings.gateway.admins


def may_see(owner: str | None, user: UserSession, settings: DatastoreSettings) -> bool:
    """A request, and its jobs, are their owner's and the admins' only (``gateway.admins``)."""
    return (owner is not None and owner == user.user_name) or is_admin(user, settings)


def check_may_archive(user: UserSession, settings: DatastoreSettings) -> None:
    if user.user_name not in settings.gateway.archivers:
        raise ForbiddenError(
            f"user {user.user_name!r} may not archive: not one of gateway.archivers"
        )


def check_limits(body: ArchiveRequest, settings: DatastoreSettings) -> None:
    limits = settings.gateway
    if body.datafile_count > limits.max_datafiles_per_request:
        raise RequestTooLargeError(
            f"{body.datafile_count} datafiles in one request; the limit is "
            f"{limits.max_datafiles_per_request} (gateway.max_datafiles_per_request)"
        )
    if body.total_bytes > limits.max_bytes_per_request:
        raise RequestTooLargeError(
            f"{body.total_bytes} bytes of datafiles in one request; the limit is "
            f"{limits.max_bytes_per_request} (gateway.max_bytes_per_request)"
        )


def check_notify(notify: NotifyTargets | None, settings: DatastoreSettings) -> None:
    """Refuse (422) a notification this gateway could not send: an e-mail without an SMTP
    server, a webhook without a signing secret or to a host not allowed."""
    if notify is None:
        return
    config = settings.notify
    if notify.email is not None and config.smtp_host is None:
        raise InvalidRequestError(
            "notify.email: this Datastore sends no e-mail (notify.smtp_host is not set)"
        )
    if notify.webhook is not None:
        if config.webhook_secret is None:
            raise InvalidRequestError(
                "notify.webhook: this Datastore calls no webhooks (notify.webhook_secret is "
                "not set)"
            )
        host = urllib.parse.urlsplit(notify.webhook).hostname or ""
        if not host_allowed(host, config.webhook_allowed_hosts):
            raise InvalidRequestError(
                f"notify.webhook: host {host!r} is not one this Datastore calls "
                f"(notify.webhook_allowed_hosts: {', '.join(config.webhook_allowed_hosts)})"
            )


async def check_vocabulary(body: ArchiveRequest, vocabulary: Vocabulary) -> None:
    """Refuse (422) a request naming a facility, investigation type, instrument, facility
    cycle, dataset type, datafile format, parameter type, sample type or technique ICAT does
    not know, as the icat-writer would later; 503 when ICAT cannot say (nothing is accepted
    unchecked)."""
    try:
        async with asyncio.timeout(VOCABULARY_TIMEOUT_SECONDS):
            unknown = await vocabulary.unknown(terms_of(body.investigations))
    except TimeoutError as exc:
        raise PeerTimeoutError(
            f"ICAT did not say within {VOCABULARY_TIMEOUT_SECONDS:g} s whether the names the "
            "request uses exist; nothing accepted"
        ) from exc
    except (CredentialError, AuthenticationError):
        # The functional account refused: the error table's 503 with an alarm, never a 401
        # (nor a word about our account) to the client.
        raise
    except DatastoreError as exc:
        # Whatever else ICAT answered (down, say), the client's request is not at fault: 503.
        raise PeerUnavailableError(
            f"cannot check the names the request uses in ICAT; nothing accepted: {exc}"
        ) from exc
    named = unknown_names_text(unknown, vocabulary.facility, at_most=MAX_UNKNOWN_NAMED)
    if named:
        raise UnknownNameError(named)


async def record_accepted(
    ledger: Ledger | None,
    message: ArchiveRequested | RestoreRequested,
    *,
    user: str,
    message_id: uuid.UUID | None = None,
) -> None:
    """Put the accepted request in the ledger before the 202, so that GET /requests/{id}
    finds it at once. The ledger queue records it too: a failure here loses nothing.
    ``message_id``: the published message's (``Ledger.expect``ed), whose copy on the ledger
    feed is then known applied (``Ledger.applied_here``)."""
    if ledger is None:
        return
    try:
        await ledger.record(
            new_request(message, owner=user, source="http"),
            event_id=None if message_id is None else str(message_id),
        )
    except DatastoreError as exc:
        log.warning("ledger_record_deferred", correlation_id=message.request_id, error=str(exc))


async def request_status(
    request_id: str, *, user: UserSession, ledger: Ledger, settings: DatastoreSettings
) -> RequestStatus:
    """The ledger's view of a request: its owner's and the admins' only (others: 404)."""
    record = await ledger.get(request_id)
    if record is None:
        queued = await queued_restore(ledger, request_id)
        if queued is not None and may_see(queued.owner, user, settings):
            return queued_status(queued)
    if record is None or not may_see(record.owner, user, settings):
        raise NotFoundError(f"no request {request_id} of yours in the ledger")
    return request_status_of(record)


async def restore_queue(
    *, user: UserSession, ledger: Ledger, settings: DatastoreSettings
) -> RestoreQueue:
    """The queue as admins see it (everyone's); anyone else sees their own restores in it."""
    rows = [r for r in await ledger.queue() if may_see(r.owner, user, settings)]
    waiting = [r for r in rows if r.state == "QUEUED"]
    return RestoreQueue(
        items=[
            RestoreQueueEntry(
                request_id=r.request_id,
                owner=r.owner,
                priority=r.priority,
                queued_at=datetime.fromtimestamp(r.queued_at, UTC),
                files=r.files,
                bytes=r.bytes,
                state="QUEUED" if r.state == "QUEUED" else "STARTING",
                position=r.position,
                waiting_on=r.why,
            )
            for r in rows
        ],
        queued_files=sum(r.files for r in waiting),
        queued_bytes=sum(r.bytes for r in waiting),
    )


async def queued_restore(ledger: Ledger, request_id: str) -> QueueRow | None:
    """The restore, if it is waiting in the queue (or just starting from it)."""
    return next((row for row in await ledger.queue() if row.request_id == request_id), None)


def queued_status(row: QueueRow) -> RequestStatus:
    """A queued restore as ``GET /requests/{id}`` shows it: QUEUED, its place and why."""
    draft = RestoreDraft.model_validate_json(row.draft)
    at = datetime.fromtimestamp(row.queued_at, UTC)
    place = f"position {row.position}" if row.position is not None else "starting"
    return RequestStatus(
        request_id=row.request_id,
        kind="restore",
        owner=row.owner,
        source="http",
        created=at,
        updated=at,
        state="QUEUED" if row.state == "QUEUED" else "SUBMITTED",
        jobs=[],
        datasets=list(restored_datasets([], draft.transfers)),
        failure=None,
        waiting_on=f"its turn in the restore queue ({place}): {row.why or 'capacity'}",
        notify=draft.notify,
        left_out=list(draft.left_out),
    )


async def publish_confirmed(
    publisher: Publisher,
    message: ArchiveRequested | ArchiveRetryRequested | ArchivalStateSet | RestoreRequested,
    *,
    user: str,
    message_id: uuid.UUID | None = None,
) -> None:
    """Publish and wait for the broker's confirm; any failure is a 503, never a 202."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            correlation_id = (
                message.change_id if isinstance(message, ArchivalStateSet) else message.request_id
            )
            await publisher.publish(
                message, correlation_id=correlation_id, user=user, message_id=message_id
            )
    except TimeoutError as exc:
        raise PeerTimeoutError(
            f"the broker did not confirm within {PUBLISH_TIMEOUT_SECONDS:g} s"
        ) from exc
    except DatastoreError:
        raise
    except Exception as exc:
        # Whatever went wrong, the broker has not confirmed: the request is not accepted,
        # and the client may retry (503), never a 202 without a confirm.
        raise PeerUnavailableError(f"publish to the broker failed: {exc!r}") from exc


async def accept_once(
    kind: str,
    body: BaseModel,
    work: Callable[[str], Awaitable[Accepted]],
    *,
    shape: type[Accepted],
    user: UserSession,
    settings: DatastoreSettings,
    idempotency: IdempotencyStore | None,
    idempotency_key: str | None,
    requests: Counter,
    ledger: Ledger | None = None,
    variant: str = "",
) -> Accepted:
    """Run ``work`` once per (user, Idempotency-Key or body) within the idempotency window;
    a repeat gets the first answer and publishes nothing. ``variant`` (a query flag that
    changes the answer, e.g. a partial restore) is part of the request's fingerprint."""

    async def answer_json(request_id: str) -> str:
        return (await work(request_id)).model_dump_json()

    # Archive and restore bodies never serialize alike (their fields differ), so one key
    # reused across the two endpoints is a mismatch (422), never a wrong replay.
    fingerprint = fingerprint_of(
        body.model_dump_json().encode() + (f"?{variant}".encode() if variant else b"")
    )

    async def not_failed(answer: str) -> bool:
        """A replayed answer stands unless the ledger says its request FAILED."""
        if ledger is None:
            return True
        request_id = shape.model_validate_json(answer).request_id
        record = await ledger.get(request_id)
        return record is None or record.state != FAILED

    answer, replayed = await run_once(
        idempotency,
        scope_key(user.user_name, idempotency_key=idempotency_key, fingerprint=fingerprint),
        fingerprint,
        answer_json,
        window=settings.gateway.idempotency_window_seconds,
        still_valid=not_failed,
    )
    accepted = shape.model_validate_json(answer)
    if replayed:
        log.info(f"{kind}_replayed", correlation_id=accepted.request_id, user=user.user_name)
    requests.labels(outcome="replayed" if replayed else "accepted").inc()
    return accepted


async def request_archive(
    body: ArchiveRequest,
    *,
    user: UserSession,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    vocabulary: Vocabulary,
    idempotency: IdempotencyStore | None,
    idempotency_key: str | None = None,
    ledger: Ledger | None = None,
) -> ArchiveAccepted:
    """Check the names it uses in ICAT, plan the request's FTS jobs, publish
    ``archive.requested`` (confirmed), answer the plan.

    The same request again (same ``idempotency_key``, or the same body from the same user
    within ``gateway.idempotency_window_seconds``) gets the first answer and publishes nothing.
    """
    check_may_archive(user, settings)
    check_limits(body, settings)
    check_notify(body.notify, settings)

    async def archive(request_id: str) -> ArchiveAccepted:
        await check_vocabulary(body, vocabulary)
        jobs = plan_archive(
            request_id,
            body.investigations,
            instrument_data_cache=settings.instrument_data_cache,
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
            vo=vo,
            max_files_per_job=settings.fts3.max_files_per_job,
        )
        message = ArchiveRequested(
            request_id=request_id,
            investigations=body.investigations,
            jobs=jobs,
            notify=body.notify,
        )
        message_id = uuid.uuid4()
        if ledger is not None:
            # Its copy on the ledger feed waits for the record below, then is acked unread.
            ledger.expect(str(message_id))
        try:
            await publish_confirmed(publisher, message, user=user.user_name, message_id=message_id)
            await record_accepted(ledger, message, user=user.user_name, message_id=message_id)
        finally:
            if ledger is not None:
                ledger.settle(str(message_id), recorded=False)  # unless recorded above
        ARCHIVED_DATAFILES.inc(body.datafile_count)
        log.info(
            "archive_requested",
            correlation_id=request_id,
            user=user.user_name,
            datafiles=body.datafile_count,
            jobs=len(jobs),
        )
        return ArchiveAccepted(request_id=request_id, job_ids=[job.job_id for job in jobs])

    return await accept_once(
        "archive",
        body,
        archive,
        shape=ArchiveAccepted,
        user=user,
        settings=settings,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
        requests=ARCHIVE_REQUESTS,
        ledger=ledger,
    )


def check_restore_limits(
    body: RestoreRequest, items: Sequence[RestoreItem] | None, settings: DatastoreSettings
) -> None:
    """The archive limits apply to restores too: ids named, then the datafiles they hold."""
    limits = settings.gateway
    if body.id_count > limits.max_datafiles_per_request:
        raise RequestTooLargeError(
            f"{body.id_count} ids in one request; the limit is "
            f"{limits.max_datafiles_per_request} (gateway.max_datafiles_per_request)"
        )
    if items is None:
        return
    if len(items) > limits.max_datafiles_per_request:
        raise RequestTooLargeError(
            f"the selection holds {len(items)} datafiles; the limit is "
            f"{limits.max_datafiles_per_request} (gateway.max_datafiles_per_request)"
        )
    total = sum(item.filesize or 0 for item in items)
    if total > limits.max_bytes_per_request:
        raise RequestTooLargeError(
            f"the selection holds {total} bytes; the limit is "
            f"{limits.max_bytes_per_request} (gateway.max_bytes_per_request)"
        )


async def online_copies(
    user_cache: Storage, transfers: Sequence[PlannedTransfer]
) -> Mapping[str, StoredFile | None]:
    """What the user data cache holds at each transfer's destination (size and adler32);
    503 when it cannot say in time (nothing is accepted: without knowing, a restore would
    either recall needlessly or fail on a file that is there)."""
    try:
        async with asyncio.timeout(ONLINE_CHECK_TIMEOUT_SECONDS):
            return await user_cache.describe_many([t.destination for t in transfers])
    except TimeoutError as exc:
        raise PeerTimeoutError(
            f"the user data cache did not say within {ONLINE_CHECK_TIMEOUT_SECONDS:g} s which "
            "files are already there; nothing accepted"
        ) from exc
    except (CredentialError, AuthenticationError):
        raise
    except DatastoreError as exc:
        raise PeerUnavailableError(
            f"cannot check which files are already on the user data cache; nothing accepted: {exc}"
        ) from exc


async def release_quietly(ledger: Ledger, request_id: str) -> None:
    """Give back a request's claims when it was not accepted; if the ledger cannot, the
    claims lapse once the request is known never to have been recorded."""
    try:
        await ledger.release_recalls(request_id)
    except DatastoreError as exc:
        log.warning("restore_claims_not_released", correlation_id=request_id, error=str(exc))


async def claim_recalls(ledger: Ledger | None, request_id: str, online: OnlineCheck) -> Sharing:
    """Claim the destinations this restore would recall to; those another restore not yet
    ended holds are followed instead (``domain.restore.share_in_flight``). Without a
    ledger nothing is shared. 503 when the ledger cannot say (nothing is accepted: the
    request could recall twice, or overwrite another's half-written copy)."""
    if ledger is None or not online.to_recall:
        return share_in_flight(online, {})
    held = await ledger.claim_recalls(request_id, [t.destination for t in online.to_recall])
    return share_in_flight(online, held)


class RestoreDraft(BaseModel):
    """A restore as resolved in ICAT, before its jobs are planned: what a queued restore
    keeps until it starts (the user data cache and the claims are looked at again then)."""

    transfers: list[PlannedTransfer]
    left_out: list[LeftOutFile] = []
    notify: NotifyTargets | None = None


def restore_limits(settings: DatastoreSettings) -> Limits:
    limits = settings.restore
    return Limits(
        user_files=limits.max_user_files_in_flight,
        user_bytes=limits.max_user_bytes_in_flight,
        staging_bytes=limits.max_bytes_staging,
    )


async def plan_and_publish(
    request_id: str,
    draft: RestoreDraft,
    online: OnlineCheck,
    sharing: Sharing,
    *,
    owner: str,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    ledger: Ledger | None,
) -> RestoreRequested:
    """Plan the jobs for what this restore recalls itself, publish ``restore.requested``
    (confirmed) and record it; its claims (and any share reserved for it) are given back
    when it cannot be published."""
    try:
        jobs = plan_restore_jobs(
            request_id,
            sharing.to_recall,
            vo=vo,
            max_files_per_job=settings.fts3.max_files_per_job,
            replace=sharing.to_replace,
        )
        priority = fts_priority(
            settings.fts3.priority, settings.restore.user_priorities.get(owner, 0)
        )
        if priority is not None:
            jobs = [job.model_copy(update={"priority": priority}) for job in jobs]
        message = RestoreRequested(
            request_id=request_id,
            jobs=jobs,
            already_online=list(online.already_online),
            already_in_flight=list(sharing.already_in_flight),
            left_out=list(draft.left_out),
            notify=draft.notify,
        )
        await publish_confirmed(publisher, message, user=owner)
    except BaseException:
        if ledger is not None:
            await release_quietly(ledger, request_id)
        raise
    await record_accepted(ledger, message, user=owner)
    RESTORED_DATAFILES.inc(len(sharing.to_recall))
    SHARED_DATAFILES.inc(len(sharing.already_in_flight))
    log.info(
        "restore_requested",
        correlation_id=request_id,
        user=owner,
        datafiles=len(draft.transfers),
        already_online=len(online.already_online),
        already_in_flight=len(sharing.already_in_flight),
        replaced=len(sharing.to_replace),
        left_out=len(draft.left_out),
        jobs=len(jobs),
    )
    return message


async def start_queued_restore(
    request_id: str,
    owner: str,
    draft: RestoreDraft,
    *,
    user_cache: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    ledger: Ledger,
) -> RestoreRequested:
    """Start a restore whose turn in the queue has come: what is online and what others
    are recalling is looked at again (it may have changed while it waited)."""
    online = sort_by_destination(draft.transfers, await online_copies(user_cache, draft.transfers))
    sharing = await claim_recalls(ledger, request_id, online)
    return await plan_and_publish(
        request_id,
        draft,
        online,
        sharing,
        owner=owner,
        publisher=publisher,
        settings=settings,
        vo=vo,
        ledger=ledger,
    )


def _datafile_ids(transfers: Sequence[PlannedTransfer]) -> list[int]:
    return sorted(t.datafile_id for t in transfers if t.datafile_id is not None)


async def request_restore(
    body: RestoreRequest,
    *,
    user: UserSession,
    selections: Selections,
    user_cache: Storage,
    publisher: Publisher,
    settings: DatastoreSettings,
    vo: str,
    idempotency: IdempotencyStore | None,
    idempotency_key: str | None = None,
    ledger: Ledger | None = None,
    partial: bool = False,
    confirm: bool = False,
    clock: Callable[[], float] = time.time,
) -> RestoreAccepted:
    """Resolve the selection in ICAT *as the user*, look at the user data cache, plan
    tape -> user data cache jobs for what is not there yet, publish ``restore.requested``
    (confirmed), answer the plan. Nothing in ICAT changes.

    Any authenticated user may restore what ICAT lets them read; ids they cannot read are a
    404, datafiles not yet FINISHED on tape a 409. A file whose copy on the user data cache
    has the catalogue's size and adler32 is not recalled (``already_online``, done at once);
    a different file there is overwritten (``domain.restore``); a file another restore is
    recalling is followed (``already_in_flight``). Repeats replay as for archive; a restore
    of the same files later is a new request and finds them online.
    ``partial``: datafiles not FINISHED on tape are left out (``left_out``, with why) and the
    rest restored; 409 still when none is. Past a cap (``restore.*``) it waits QUEUED and
    starts by itself (``datastore_gateway.restore_queue``); past a cap alone, 413.
    """
    check_restore_limits(body, None, settings)
    check_notify(body.notify, settings)

    async def restore(request_id: str) -> RestoreAccepted:
        transfers, not_restored = await resolve_restore(
            body, user=user, selections=selections, settings=settings, partial=partial
        )
        check_confirmed(transfers, settings, confirm=confirm)
        draft = RestoreDraft(
            transfers=list(transfers), left_out=list(not_restored), notify=body.notify
        )
        online = sort_by_destination(transfers, await online_copies(user_cache, transfers))
        sharing = await claim_recalls(ledger, request_id, online)
        queued = await admit_restore(
            ledger, request_id, draft, recall_usage(sharing.to_recall), user, settings, clock
        )
        if queued is not None:
            why, position = queued
            if ledger is not None:
                await release_quietly(ledger, request_id)  # claimed again when it starts
            log.info(
                "restore_queued",
                correlation_id=request_id,
                user=user.user_name,
                position=position,
                why=why,
            )
            return RestoreAccepted(
                request_id=request_id,
                job_ids=[],
                left_out=list(not_restored),
                state="QUEUED",
                queue_position=position,
                waiting_on=why,
            )
        try:
            message = await plan_and_publish(
                request_id,
                draft,
                online,
                sharing,
                owner=user.user_name,
                publisher=publisher,
                settings=settings,
                vo=vo,
                ledger=ledger,
            )
        except BaseException:
            if ledger is not None:
                await forget_admission(ledger, request_id)
            raise
        return RestoreAccepted(
            request_id=request_id,
            job_ids=[job.job_id for job in message.jobs],
            already_online=_datafile_ids(online.already_online),
            left_out=list(not_restored),
            already_in_flight=_datafile_ids(sharing.already_in_flight),
        )

    return await accept_once(
        "restore",
        body,
        restore,
        shape=RestoreAccepted,
        variant="partial" if partial else "",
        user=user,
        settings=settings,
        idempotency=idempotency,
        idempotency_key=idempotency_key,
        requests=RESTORE_REQUESTS,
        ledger=ledger,
    )


async def resolve_restore(
    body: RestoreRequest,
    *,
    user: UserSession,
    selections: Selections,
    settings: DatastoreSettings,
    partial: bool,
) -> tuple[list[PlannedTransfer], tuple[LeftOutFile, ...]]:
    """The selection resolved in ICAT as the user, checked against the limits: its
    transfers tape -> user data cache, and (``partial``) what is left out and why."""
    limit = settings.gateway.max_datafiles_per_request
    not_restored: tuple[LeftOutFile, ...] = ()
    try:
        # ICAT is read up to one datafile past the limit, never further.
        items = await selections.resolve(
            user.session_id,
            body.investigation_ids,
            body.dataset_ids,
            body.datafile_ids,
            max_datafiles=limit,
        )
    except TooLargeError as exc:
        raise RequestTooLargeError(f"{exc} (gateway.max_datafiles_per_request)") from exc
    except NotArchivedError as exc:
        if not partial or not exc.restorable:
            raise
        items, not_restored = exc.restorable, left_out(exc.states)
    if not items:
        raise InvalidRequestError("the selection holds no datafiles to restore")
    check_restore_limits(body, items, settings)
    transfers = restore_transfers(
        items,
        tape_archive=settings.tape_archive,
        tape_root_dir=settings.tape_root_dir,
        user_data_cache=settings.user_data_cache,
    )
    return list(transfers), not_restored


def check_confirmed(
    transfers: Sequence[PlannedTransfer], settings: DatastoreSettings, *, confirm: bool
) -> None:
    """A restore above ``restore.confirm_above_bytes`` needs ``confirm=true`` (428 saying
    its size): a big recall is never started by a slip."""
    above = settings.restore.confirm_above_bytes
    size = sum(t.filesize or 0 for t in transfers)
    if above is not None and size > above and not confirm:
        raise ConfirmationRequiredError(
            f"this restore selects {len(transfers)} files, {size} bytes: more than "
            f"{above} (restore.confirm_above_bytes); see what it recalls with "
            "?dry_run=true, then send it again with ?confirm=true"
        )


async def preview_restore(
    body: RestoreRequest,
    *,
    user: UserSession,
    selections: Selections,
    user_cache: Storage,
    settings: DatastoreSettings,
    ledger: Ledger | None,
    partial: bool = False,
) -> RestorePreview:
    """What the restore would do, submitting nothing: the files and bytes it selects, how
    many are already online, being recalled by another restore, or need tape; whether it
    would wait QUEUED (and why) or need ``confirm=true``. The same checks as the restore
    itself (404, 409, 413 ...); nothing is claimed, reserved or published."""
    check_restore_limits(body, None, settings)
    transfers, not_restored = await resolve_restore(
        body, user=user, selections=selections, settings=settings, partial=partial
    )
    online = sort_by_destination(transfers, await online_copies(user_cache, transfers))
    held = (
        await ledger.held_recalls([t.destination for t in online.to_recall])
        if ledger is not None and online.to_recall
        else {}
    )
    sharing = share_in_flight(online, held)
    asked = recall_usage(sharing.to_recall)
    limits = restore_limits(settings)
    refused = never_fits(asked, limits)
    wait = None
    if refused is None and ledger is not None and limits.any and asked.files:
        usage, facility = await ledger.usage()
        wait = why_wait(usage.get(user.user_name, Usage()), facility, asked, limits)
    above = settings.restore.confirm_above_bytes
    size = sum(t.filesize or 0 for t in transfers)
    return RestorePreview(
        files=len(transfers),
        bytes=size,
        already_online=len(online.already_online),
        already_online_bytes=recall_usage(online.already_online).bytes,
        already_in_flight=len(sharing.already_in_flight),
        from_tape=asked.files,
        from_tape_bytes=asked.bytes,
        left_out=list(not_restored),
        refused=refused,
        would_queue=wait,
        needs_confirm=above is not None and size > above,
    )


async def admit_restore(
    ledger: Ledger | None,
    request_id: str,
    draft: RestoreDraft,
    asked: Usage,
    user: UserSession,
    settings: DatastoreSettings,
    clock: Callable[[], float],
) -> tuple[str, int] | None:
    """Whether the restore starts now (None) or waits QUEUED (why, position): decided in the
    ledger, atomically with every other replica's decisions. 413 when it alone is past a
    cap (it could never start). Nothing to recall, or no caps: it starts."""
    limits = restore_limits(settings)
    why = never_fits(asked, limits)
    if why is not None:
        if ledger is not None:
            await release_quietly(ledger, request_id)
        raise RequestTooLargeError(why)
    if ledger is None or not limits.any or asked.files == 0:
        return None
    entry = Waiting(
        request_id,
        user.user_name,
        settings.restore.user_priorities.get(user.user_name, 0),
        clock(),
        asked,
    )
    try:
        queued = await ledger.admit(entry, draft.model_dump_json(), limits)
    except BaseException:
        await release_quietly(ledger, request_id)
        raise
    if queued is not None:
        RESTORES_QUEUED.inc()
    return queued


async def forget_admission(ledger: Ledger, request_id: str) -> None:
    """A restore let start was not accepted after all: its reserved share goes back."""
    try:
        await ledger.not_started(request_id, None)
    except DatastoreError as exc:
        log.warning("restore_share_not_released", correlation_id=request_id, error=str(exc))


# ---------------------------------------------------------------- job status

#: What an FTS job id looks like (a UUID); anything else is not a job, and never reaches FTS
#: (a comma would turn the look-up into a bulk query).
_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


async def job_progress(
    job_id: str,
    transfers: TransferService,
    *,
    user: UserSession,
    ledger: Ledger,
    settings: DatastoreSettings,
) -> JobProgress:
    """The job as FTS reports it, to the owner of its request and to admins only.

    Anyone else hears 404, exactly as for a job that does not exist (a 403 would tell them it
    does): a job of another user's request, and a job the ledger does not know at all (one
    submitted to FTS by someone else, say), which only admins may look at. FTS is asked only
    once the caller may see the answer; NotFoundError (404) when FTS does not know the job.
    """
    if not _JOB_ID.match(job_id):
        raise NotFoundError(f"no such job: {job_id!r} is not an FTS job id")
    if not is_admin(user, settings):
        known = await ledger.job_owner(job_id)
        if known is None or not may_see(known.owner, user, settings):
            raise NotFoundError(f"no job {job_id} of yours")
    progress = (await transfers.status([job_id])).get(job_id)
    if progress is None:
        raise NotFoundError(f"FTS at {transfers.endpoint} knows no job {job_id}")
    return progress


def percentage_of(progress: JobProgress) -> float:
    """Files whose transfer ended (FINISHED, FAILED, CANCELED) / all files x 100; a job
    without files is at 100 (``states.ended_percentage``)."""
    ended = sum(1 for f in progress.files if is_terminal(f.state))
    return ended_percentage(ended, len(progress.files))


def job_status(progress: JobProgress) -> JobStatus:
    return JobStatus(
        job_id=progress.job_id,
        state=progress.state,
        reason=progress.reason,
        percentage_complete=percentage_of(progress),
        files=[
            JobFile(source=f.source, destination=f.destination, state=f.state, reason=f.reason)
            for f in progress.files
        ],
    )


def job_state(progress: JobProgress) -> JobState:
    return JobState(
        job_id=progress.job_id, status=progress.state, complete=is_terminal(progress.state)
    )


def job_complete(progress: JobProgress) -> JobComplete:
    return JobComplete(job_id=progress.job_id, complete=is_terminal(progress.state))


def job_percentage(progress: JobProgress) -> JobPercentage:
    return JobPercentage(job_id=progress.job_id, percentage_complete=percentage_of(progress))
