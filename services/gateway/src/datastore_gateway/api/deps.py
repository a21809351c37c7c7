"""FastAPI dependencies: what a route may ask for, as ``Annotated`` aliases.

Everything comes from ``app.state.gateway`` (filled by ``create_app`` and its lifespan), so a
test injects fakes through ``create_app(..., sessions=FakeSessions())`` or overrides any of
the ``get_*`` functions with ``app.dependency_overrides``. Every dependency is ``async def``:
FastAPI runs a plain ``def`` dependency on a thread pool, a thread hop per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from datastore_common.domain.ledger import MAX_PAGE_SIZE, PAGE_SIZE
from datastore_common.errors import PeerUnavailableError, SessionRefusedError
from datastore_common.ports import (
    Publisher,
    QueueDepths,
    Selections,
    Sessions,
    Storage,
    TransferService,
    UserSession,
    Vocabulary,
)
from datastore_common.settings import DatastoreSettings
from datastore_gateway.admission import Admission
from datastore_gateway.idempotency import IdempotencyStore
from datastore_gateway.ledger import Ledger
from datastore_gateway.middleware import CHECKED_SESSION, MISSING_BEARER
from datastore_gateway.schemas import LookupPage
from datastore_gateway.vo import VoSource

T = TypeVar("T")


@dataclass
class GatewayState:
    """The gateway's long-lived collaborators; ``None`` until the lifespan has opened them."""

    settings: DatastoreSettings
    sessions: Sessions | None = None
    publisher: Publisher | None = None
    vo: VoSource | None = None
    idempotency: IdempotencyStore | None = None
    selections: Selections | None = None
    transfers: TransferService | None = None
    vocabulary: Vocabulary | None = None
    ledger: Ledger | None = None
    #: The user data cache, where a restore looks for copies already online.
    user_cache: Storage | None = None
    #: The broker's queue depths (operators' view); None until connected.
    queue_depths: QueueDepths | None = None
    broker_check: Callable[[], bool] = lambda: False
    logins: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.logins = Admission(
            self.settings.gateway.max_concurrent_logins,
            what="logins",
            setting="gateway.max_concurrent_logins",
            wait_seconds=self.settings.gateway.login_wait_seconds,
        )

    @property
    def broker_connected(self) -> bool:
        return self.publisher is not None and self.broker_check()


async def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


def _ready(adapter: T | None, missing: str) -> T:
    """The adapter, or a 503 saying what is missing (it is built at start-up)."""
    if adapter is None:
        raise PeerUnavailableError(missing)
    return adapter


async def get_settings(state: StateDep) -> DatastoreSettings:
    return state.settings


async def get_publisher(state: StateDep) -> Publisher:
    return _ready(state.publisher, "not connected to the broker yet")


async def get_sessions(state: StateDep) -> Sessions:
    return _ready(state.sessions, "ICAT sessions are not available yet")


async def get_selections(state: StateDep) -> Selections:
    return _ready(state.selections, "ICAT selections are not available yet")


async def get_user_cache(state: StateDep) -> Storage:
    return _ready(state.user_cache, "the user data cache is not available yet")


async def get_transfers(state: StateDep) -> TransferService:
    return _ready(state.transfers, "FTS is not configured for job status (fts3 credentials)")


async def get_vocabulary(state: StateDep) -> Vocabulary:
    return _ready(state.vocabulary, "ICAT vocabulary checks are not available yet")


async def get_ledger(state: StateDep) -> Ledger:
    return _ready(state.ledger, "the request ledger is not open yet")


async def get_optional_ledger(state: StateDep) -> Ledger | None:
    return state.ledger


async def get_queue_depths(state: StateDep) -> QueueDepths | None:
    return state.queue_depths


async def get_logins(state: StateDep) -> Admission:
    return state.logins


async def get_idempotency(state: StateDep) -> IdempotencyStore | None:
    return state.idempotency


async def get_vo(state: StateDep) -> str:
    if state.vo is None:
        raise PeerUnavailableError("FTS VO is not known yet")
    return await state.vo.get()


async def get_lookup_page(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page at most.")
    ] = PAGE_SIZE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The next_cursor of the previous page (same query), as it was: the "
            "page after it.",
        ),
    ] = None,
) -> LookupPage:
    """Which page of a look-up (``GET /investigations``, ``GET /datasets``) is asked for."""
    return LookupPage(limit=limit, cursor=cursor)


SettingsDep = Annotated[DatastoreSettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
SessionsDep = Annotated[Sessions, Depends(get_sessions)]
SelectionsDep = Annotated[Selections, Depends(get_selections)]
UserCacheDep = Annotated[Storage, Depends(get_user_cache)]
TransfersDep = Annotated[TransferService, Depends(get_transfers)]
VocabularyDep = Annotated[Vocabulary, Depends(get_vocabulary)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
OptionalLedgerDep = Annotated[Ledger | None, Depends(get_optional_ledger)]
IdempotencyDep = Annotated[IdempotencyStore | None, Depends(get_idempotency)]
QueueDepthsDep = Annotated[QueueDepths | None, Depends(get_queue_depths)]
LoginsDep = Annotated[Admission, Depends(get_logins)]
VoDep = Annotated[str, Depends(get_vo)]
LookupPageDep = Annotated[LookupPage, Depends(get_lookup_page)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="IcatSession",
    description="The ICAT session id from POST /login.",
)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    sessions: SessionsDep,
) -> UserSession:
    """Who owns the bearer session (checked in ICAT, cached briefly); 401 otherwise.

    ``middleware.RequireSession`` has checked it already for every non-public path and left
    the answer in the request's state; asking again here keeps a route safe on its own."""
    if credentials is None or not credentials.credentials:
        raise SessionRefusedError(MISSING_BEARER)
    checked = request.scope.get("state", {}).get(CHECKED_SESSION)
    if isinstance(checked, UserSession) and checked.session_id == credentials.credentials:
        return checked
    return await sessions.check(credentials.credentials)


CurrentUser = Annotated[UserSession, Depends(current_user)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat a request with the same key to get its first answer, "
        "never a second archive or restore.",
    ),
]
