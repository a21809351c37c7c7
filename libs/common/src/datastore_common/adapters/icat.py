"""ICAT adapter: python-icat (SOAP, suds) behind the ``Sessions`` and ``Catalogue`` ports.

Building a python-icat ``Client`` costs about 55 ICAT calls (WSDL, XSD, one ``getEntityInfo``
per entity), so clients are long-lived and built lazily by :class:`IcatClientPool`. suds is
blocking and a suds client is not safe for concurrent use by several threads, so every call
runs on a small dedicated thread pool and each client serves one call at a time.
ICAT faults and wire failures become :mod:`datastore_common.errors` types
(:func:`translate_icat_error`), so callers branch on the kind of failure.
"""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import icat
import icat.exception as icat_errors
import suds
import suds.transport

from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DatastoreError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
)
from datastore_common.logging import get_logger
from datastore_common.ports import Sessions, UserSession
from datastore_common.settings import IcatSettings

log = get_logger(__name__)

T = TypeVar("T")
IcatClient = Any  # icat.Client: python-icat ships no type information

_FAULT_ERRORS: tuple[tuple[type[Exception], type[DatastoreError]], ...] = (
    (icat_errors.ICATSessionError, AuthenticationError),
    (icat_errors.ICATPrivilegesError, ForbiddenError),
    (icat_errors.ICATNoObjectError, NotFoundError),
    (icat_errors.ICATObjectExistsError, AlreadyExistsError),
    (icat_errors.ICATValidationError, InvalidRequestError),
    (icat_errors.ICATParameterError, InvalidRequestError),
    (icat_errors.ICATNotImplementedError, InvalidRequestError),
    (icat_errors.ICATInternalError, PeerUnavailableError),
)


def translate_icat_error(exc: BaseException, *, operation: str) -> DatastoreError | None:
    """The Datastore error for a python-icat/suds/network failure; None for anything else
    (a programming error must surface as itself)."""
    text = f"icat {operation}: {exc}"
    for fault, error in _FAULT_ERRORS:
        if isinstance(exc, fault):
            return error(text)
    if isinstance(exc, icat_errors.ICATError | suds.WebFault):
        return PeerUnavailableError(text)  # a fault without an IcatException type
    if isinstance(exc, suds.transport.TransportError):
        code = getattr(exc, "httpcode", None)
        if code is None or code >= 500 or code in (408, 429):
            return PeerUnavailableError(text)
        if code == 401:
            return AuthenticationError(text)
        if code == 403:
            return ForbiddenError(text)
        return InvalidRequestError(text)
    if isinstance(exc, TimeoutError):
        return PeerTimeoutError(text)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return PeerTimeoutError(text)
        return PeerUnavailableError(text)
    if isinstance(exc, OSError | http.client.HTTPException):
        return PeerUnavailableError(text)
    return None


def raw_call(client: IcatClient, method: str, *arguments: Any) -> Any:
    """Call an ICAT SOAP operation on the client's suds service directly, with python-icat's
    fault translation: for operations on *another* session than the client's own."""
    try:
        return getattr(client.service, method)(*arguments)
    except suds.WebFault as exc:
        raise icat_errors.translateError(exc) from None


class IcatClientPool:
    """Up to ``size`` long-lived python-icat clients, built on first need, each used by one
    thread at a time; calls run on a dedicated executor so the event loop never blocks."""

    def __init__(
        self,
        url: str,
        *,
        check_cert: bool = True,
        size: int = 2,
        timeout_seconds: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.url = url
        self._check_cert = check_cert
        self._timeout_seconds = timeout_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[IcatClient] = []
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="icat")
        self.clients_built = 0

    def _build(self) -> IcatClient:
        client = icat.Client(self.url, checkCert=self._check_cert, timeout=self._timeout_seconds)
        # Sessions are ours to end (IcatCatalogue.close); python-icat would log out at exit.
        client.autoLogout = False
        self.clients_built += 1
        log.info("icat_client_built", url=self.url, clients=self.clients_built)
        return client

    async def call(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        """Run ``work(client)`` on a free client in the ICAT thread pool; failures come back
        as Datastore errors named after ``operation``."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            reusable = False
            try:
                if client is None:
                    client = await loop.run_in_executor(self._executor, self._build)
                result = await loop.run_in_executor(self._executor, work, client)
                reusable = True
                return result
            except asyncio.CancelledError:
                # The thread may still be using the client: never hand it to another call.
                raise
            except Exception as exc:
                reusable = client is not None
                error = translate_icat_error(exc, operation=operation)
                if error is None:
                    raise
                raise error from exc
            finally:
                if reusable and client is not None:
                    self._idle.append(client)

    async def close(self) -> None:
        self._idle.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


class IcatSessions(Sessions):
    """Login and session checks for *users* (gateway). Works on the raw suds service, so one
    shared client serves every user and no per-user client (55 calls) is ever built."""

    def __init__(self, pool: IcatClientPool) -> None:
        self._pool = pool

    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        def work(client: IcatClient) -> str:
            entries = client.factory.create("credentials")
            for key, value in credentials.items():
                entries.entry.append({"key": key, "value": value})
            return str(raw_call(client, "login", auth, entries))

        return await self._pool.call("login", work)

    async def check(self, session_id: str) -> UserSession:
        if not session_id:
            raise AuthenticationError("icat getUserName: empty session id")
        name = await self._pool.call(
            "getUserName", lambda client: str(raw_call(client, "getUserName", session_id))
        )
        return UserSession(session_id=session_id, user_name=name)

    async def logout(self, session_id: str) -> None:
        await self._pool.call("logout", lambda client: raw_call(client, "logout", session_id))


def pool_from_settings(settings: IcatSettings, *, size: int = 2) -> IcatClientPool:
    return IcatClientPool(str(settings.url), check_cert=settings.check_cert, size=size)
