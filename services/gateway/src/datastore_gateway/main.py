"""The gateway's composition root: ``create_app(settings)`` builds the FastAPI application.

Nothing is connected at import or in ``create_app``: the lifespan opens whatever was not
injected (the bus publisher and the queue depths operators see; the ICAT sessions and
vocabulary adapters on one client pool and the selections on another, so a large restore
selection never starves logins; the idempotency store, the one FTS port for job status and
the VO; the user data cache a restore looks at) and closes what it opened.
Errors raised anywhere below become HTTP answers here, once: SessionRefusedError (the
caller's own session or login) 401, ForbiddenError 403, NotFoundError 404, NotArchivedError
and ConflictError 409, TooLargeError 413, ConfirmationRequiredError 428, other PermanentError
422, TransientError 503 (a selection past ``icat.selection_deadline_seconds`` included) —
each with
``{"detail": "<reason>"}``. A peer refusing *our* credential (``CredentialError``, or any
other ``AuthenticationError``: FTS, the broker, ICAT's functional account) is a 503 with an
alarm, never a 401 telling the caller their session is bad.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from datastore_common.adapters.rabbitmq.depths import BusQueueDepths
from datastore_common.adapters.rabbitmq.publisher import BusPublisher
from datastore_common.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    CredentialError,
    DatastoreError,
    ForbiddenError,
    InsecureKeyFileError,
    NotArchivedError,
    NotFoundError,
    PermanentError,
    SessionRefusedError,
    TooLargeError,
    TransientError,
)
from datastore_common.logging import get_logger
from datastore_common.metrics import CREDENTIAL_FAILURES
from datastore_common.ports import (
    Publisher,
    QueueDepths,
    Selections,
    Sessions,
    Storage,
    TransferService,
    Vocabulary,
)
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import GATEWAY_LEDGER
from datastore_common.worker import Route, make_bus, subscribe
from datastore_gateway.api.deps import GatewayState
from datastore_gateway.api.routes import (
    archive,
    datasets,
    health,
    investigations,
    jobs,
    login,
    operations,
    requests,
    restore,
    ui,
)
from datastore_gateway.cleaner import RestoredCopyCleaner
from datastore_gateway.handlers import ConfirmationRequiredError
from datastore_gateway.idempotency import IdempotencyStore, store_from_url
from datastore_gateway.ledger import Ledger
from datastore_gateway.ledger_feed import follow
from datastore_gateway.middleware import (
    RETRY_AFTER_SECONDS,
    UNAUTHENTICATED_HEADERS,
    BodySizeLimit,
    RequestContext,
    RequireSession,
)
from datastore_gateway.notifications import HttpWebhookSender, SmtpMailSender
from datastore_gateway.notifier import Notifier
from datastore_gateway.restore_queue import RestoreQueue
from datastore_gateway.schemas import API_VERSION
from datastore_gateway.session_cache import CachedSessions
from datastore_gateway.vo import VoSource, vo_source
from datastore_gateway.vocabulary_cache import CachedVocabulary

if TYPE_CHECKING:
    from datastore_common.adapters.icat.pool import IcatClientPool
    from datastore_common.adapters.icat.vocabulary import IcatVocabulary

log = get_logger(__name__)

SERVICE = "gateway"
#: How often ended requests past their retention are purged from the ledger.
LEDGER_PURGE_SECONDS = 3600.0


@dataclass(frozen=True)
class IcatAdapters:
    """The gateway's ICAT adapters and the two client pools they use: ``session_pool`` for
    logins, session checks and vocabulary look-ups (short calls), ``selection_pool`` for
    everything read with a user's session on their behalf (restore selections, status,
    look-ups), which may be long: a selection waits only for a selection client."""

    session_pool: IcatClientPool
    selection_pool: IcatClientPool
    sessions: Sessions
    selections: Selections
    vocabulary: IcatVocabulary


def icat_adapters(settings: DatastoreSettings) -> IcatAdapters:
    """Build (connect nothing: clients are built on first use) the ICAT adapters."""
    from datastore_common.adapters.icat.pool import pool_from_settings
    from datastore_common.adapters.icat.selections import IcatSelections
    from datastore_common.adapters.icat.sessions import IcatSessions
    from datastore_common.adapters.icat.vocabulary import IcatVocabulary

    icat = settings.icat
    session_pool = pool_from_settings(icat, size=icat.session_pool_size)
    selection_pool = pool_from_settings(
        icat, size=icat.selection_pool_size, timeout_seconds=icat.selection_deadline_seconds
    )
    return IcatAdapters(
        session_pool=session_pool,
        selection_pool=selection_pool,
        sessions=IcatSessions(session_pool),
        selections=IcatSelections(
            selection_pool,
            archival_writer=icat.functional_user,
            trusted_writers=icat.trusted_writers,
            parameter_units=icat.archival_parameter_units,
            facility=icat.facility,
            deadline_seconds=icat.selection_deadline_seconds,
        ),
        vocabulary=IcatVocabulary(icat, pool=session_pool),
    )


def create_app(
    settings: DatastoreSettings,
    *,
    sessions: Sessions | None = None,
    publisher: Publisher | None = None,
    vo: str | VoSource | None = None,
    idempotency: IdempotencyStore | None = None,
    broker_connected: Callable[[], bool] | None = None,
    selections: Selections | None = None,
    transfers: TransferService | None = None,
    vocabulary: Vocabulary | None = None,
    ledger: Ledger | None = None,
    user_cache: Storage | None = None,
    queue_depths: QueueDepths | None = None,
) -> FastAPI:
    """The gateway application; anything not injected is opened by the lifespan."""
    state = GatewayState(settings=settings)
    if sessions is not None:
        state.sessions = CachedSessions(sessions, ttl=settings.icat.session_cache_seconds)
    if publisher is not None:
        state.publisher = publisher
        state.broker_check = broker_connected or (lambda: True)
    if vo is not None:
        state.vo = vo if isinstance(vo, VoSource) else VoSource(vo=vo)
    state.idempotency = idempotency
    state.ledger = ledger
    state.selections = selections
    state.transfers = transfers
    state.user_cache = user_cache
    state.queue_depths = queue_depths
    if vocabulary is not None:
        state.vocabulary = CachedVocabulary(
            vocabulary, ttl=settings.gateway.vocabulary_cache_seconds
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as opened:
            await _open_missing(state, opened)
            log.info("gateway_started", vo=state.vo.known if state.vo else None)
            yield
        log.info("gateway_stopped")

    app = FastAPI(
        title="Datastore gateway",
        version=API_VERSION,
        summary="Archive facility data from the instrument data cache to tape, and restore it "
        "to the user data cache, via FTS3, with ICAT kept truthful.",
        lifespan=lifespan,
    )
    app.state.gateway = state
    app.include_router(login.router)
    app.include_router(archive.router)
    app.include_router(restore.router)
    app.include_router(jobs.router)
    app.include_router(requests.router)
    app.include_router(datasets.router)
    app.include_router(datasets.original_router)
    app.include_router(investigations.router)
    app.include_router(health.router)
    app.include_router(operations.router)
    app.include_router(ui.router)
    _add_error_handlers(app)
    # Starlette runs the last added outermost: request context, then the body-size caps (a
    # declared size is refused before anything else), then the session every path but the
    # public ones requires (middleware.PUBLIC_PATHS), then the routes.
    app.add_middleware(RequireSession)
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=settings.gateway.max_body_bytes,
        limits={"/login": (settings.gateway.max_login_body_bytes, "gateway.max_login_body_bytes")},
    )
    app.add_middleware(RequestContext)
    if settings.gateway.cors_origins:
        # Outermost: a browser's preflight (OPTIONS, no session) is answered before the
        # session check, and every answer, errors included, carries the CORS headers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.gateway.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "Location"],
        )
    return app


async def _open_missing(state: GatewayState, opened: contextlib.AsyncExitStack) -> None:
    settings = state.settings
    queue: Ledger | None = None  # the ledger, when this gateway runs the restore queue
    if state.idempotency is None and settings.gateway.idempotency_window_seconds > 0:
        store = store_from_url(settings.gateway.state_db)
        await store.open()
        opened.push_async_callback(store.close)
        state.idempotency = store
    if state.ledger is None:
        ledger = Ledger(
            settings.gateway.state_db,
            public_url=settings.gateway.public_url,
            copy_retention_days=settings.restore.retention_days,
        )
        await ledger.open()
        opened.push_async_callback(ledger.close)
        state.ledger = ledger
    if state.sessions is None or state.selections is None or state.vocabulary is None:
        icat = icat_adapters(settings)
        opened.push_async_callback(icat.session_pool.close)
        opened.push_async_callback(icat.selection_pool.close)
        if state.sessions is None:
            state.sessions = CachedSessions(icat.sessions, ttl=settings.icat.session_cache_seconds)
        if state.selections is None:
            state.selections = icat.selections
        if state.vocabulary is None:
            opened.push_async_callback(icat.vocabulary.close)  # logs out before pool.close
            state.vocabulary = CachedVocabulary(
                icat.vocabulary, ttl=settings.gateway.vocabulary_cache_seconds
            )
    if state.user_cache is None:
        from datastore_common.adapters.xrootd.storage import XRootDStorage

        state.user_cache = XRootDStorage.from_settings(settings)  # connects per call
    if state.transfers is None:
        from datastore_common.adapters.fts3.transfer_service import Fts3TransferService

        try:
            fts = Fts3TransferService.from_settings(settings)
        except InsecureKeyFileError:
            raise  # a key others can read: refuse to start, as the workers do
        except ConfigurationError as exc:
            # Archive and restore still work; the job endpoints answer 503 saying why.
            log.warning("fts_status_unavailable", error=str(exc))
        else:
            opened.push_async_callback(fts.aclose)
            state.transfers = fts
    if state.publisher is None:
        bus = make_bus(settings, SERVICE)
        await bus.connect(attempts=settings.broker.connect_attempts)
        opened.push_async_callback(bus.close)
        state.publisher = BusPublisher(bus)
        state.broker_check = lambda: bus.connected
        if state.queue_depths is None:
            state.queue_depths = BusQueueDepths(bus)
        # This gateway keeps the request ledger up to date (with any other replicas).
        ledger = state.ledger
        instruments = frozenset(account.broker_user for account in settings.instruments)
        feed = functools.partial(follow, ledger=ledger, instruments=instruments)
        # A request this gateway recorded before answering comes back on the feed: acked
        # unread (a 10,000-file request's body costs more to parse than to accept).
        await subscribe(bus, Route(GATEWAY_LEDGER, feed, already_applied=ledger.applied_here))
        purging = asyncio.create_task(_purge_periodically(ledger, settings))
        opened.callback(purging.cancel)
        # ... and sends what its outbox holds for requests that ended (with any replicas).
        webhooks = HttpWebhookSender(timeout=settings.notify.webhook_timeout_seconds)
        opened.push_async_callback(webhooks.aclose)
        notifier = Notifier(
            ledger,
            settings.notify,
            publisher=state.publisher,
            webhooks=webhooks,
            mail=SmtpMailSender(settings.notify) if settings.notify.smtp_host else None,
        )
        notifying = asyncio.create_task(notifier.run())
        opened.callback(notifying.cancel)
        queue = ledger
    if state.vo is None:
        state.vo = vo_source(settings, state.transfers)  # the one FTS port, opened above
        try:
            await state.vo.get()
        except DatastoreError as exc:
            # Start anyway: the next archive request asks again (and answers 503 meanwhile).
            log.warning("fts_vo_unknown", error=str(exc))
    if queue is not None and state.vo is not None and state.user_cache is not None:
        # ... and starts queued restores as capacity frees up (with any replicas).
        assert state.publisher is not None
        starter = RestoreQueue(
            queue, settings, publisher=state.publisher, user_cache=state.user_cache, vo=state.vo
        )
        starting = asyncio.create_task(starter.run())
        opened.callback(starting.cancel)
        if settings.restore.cleaner:
            # ... and removes expired restored copies it wrote (with any replicas).
            cleaner = RestoredCopyCleaner(queue, state.user_cache, settings.restore)
            cleaning = asyncio.create_task(cleaner.run())
            opened.callback(cleaning.cancel)


async def _purge_periodically(ledger: Ledger, settings: DatastoreSettings) -> None:
    """Forget requests that ended more than ``gateway.ledger_retention_days`` ago."""
    while True:
        try:
            forgotten = await ledger.purge(
                older_than_seconds=settings.gateway.ledger_retention_days * 86400
            )
            if forgotten:
                log.info("ledger_purged", requests=forgotten)
        except DatastoreError as exc:
            log.warning("ledger_purge_failed", error=str(exc))
        await asyncio.sleep(LEDGER_PURGE_SECONDS)


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def unauthenticated(_: Request, exc: Exception) -> JSONResponse:
        return _problem(401, str(exc), UNAUTHENTICATED_HEADERS)

    async def forbidden(_: Request, exc: Exception) -> JSONResponse:
        return _problem(403, str(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _problem(404, str(exc))

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return _problem(409, str(exc))

    async def unconfirmed(_: Request, exc: Exception) -> JSONResponse:
        return _problem(428, str(exc))

    async def too_large(_: Request, exc: Exception) -> JSONResponse:
        return _problem(413, str(exc))

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return _problem(422, str(exc))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("request_unavailable", error=str(exc))
        return _problem(503, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})

    async def refused_us(_: Request, exc: Exception) -> JSONResponse:
        # Our own credential (FTS certificate or token, ICAT functional account, broker): an
        # operator must act. The caller is not at fault and learns nothing of our credentials.
        CREDENTIAL_FAILURES.labels(queue=SERVICE).inc()
        log.error(
            "credential_refused",
            error=str(exc),
            error_type=type(exc).__name__,
            action="fix the service's credential; callers are answered 503 meanwhile",
        )
        return _problem(
            503,
            "a service the gateway depends on refused the gateway's own credential (not "
            "yours); the operators are alerted: retry later",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def invalid_body(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(validation_problem(exc.errors()), status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's bare 400 for a JSON body that is not UTF-8: an invalid body like any
            # other, so the documented 422 with a reason.
            error = {"type": "json_invalid", "loc": ("body",), "msg": "body is not UTF-8 JSON"}
            return JSONResponse(validation_problem([error]), status_code=422)
        return await http_exception_handler(request, exc)

    # Most specific first is not needed: Starlette picks the handler by the exception's MRO.
    # Only the caller's own session is a 401; any other refused authentication is a peer's.
    app.add_exception_handler(SessionRefusedError, unauthenticated)
    app.add_exception_handler(AuthenticationError, refused_us)
    app.add_exception_handler(CredentialError, refused_us)
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(NotArchivedError, conflict)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(TooLargeError, too_large)
    app.add_exception_handler(ConfirmationRequiredError, unconfirmed)
    app.add_exception_handler(PermanentError, refused)
    app.add_exception_handler(TransientError, unavailable)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(StarletteHTTPException, http_error)


#: Validation errors are trimmed to these keys: never echo the input back (it can be 64 MiB).
_ERROR_KEYS = ("type", "loc", "msg")


def validation_problem(errors: Any) -> dict[str, Any]:
    """FastAPI's 422 shape without the echoed input, plus one readable ``reason`` line."""
    trimmed = [{k: e[k] for k in _ERROR_KEYS if k in e} for e in list(errors)[:20]]
    reason = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in trimmed
    )
    return {"detail": trimmed, "reason": reason}
