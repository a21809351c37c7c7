"""How calls reach ICAT: a pool of long-lived python-icat clients on their own threads, and
the functional account's one session, shared by every pooled client."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import icat
import icat.exception as icat_errors
import icat.sslcontext
import suds
import suds.transport

from datastore_common.adapters.icat.errors import translate_icat_error
from datastore_common.errors import (
    AuthenticationError,
    CredentialError,
    ForbiddenError,
    PeerTimeoutError,
    TransientError,
)
from datastore_common.logging import get_logger
from datastore_common.metrics import peer_call
from datastore_common.settings import IcatSettings

log = get_logger(__name__)

T = TypeVar("T")
IcatClient = Any  # icat.Client: python-icat ships no type information

# Which layer retries what: architecture.md, "Retries". Here only what is cheap and safe: an
# idempotent call that failed fast (a dropped connection, a lost answer, a 5xx), at once and
# a few times within about a second. A time-out (up to ``timeout_seconds``) or a refused
# credential is never retried here; neither is anything still failing after that second.

#: A new python-icat client asks ICAT ~55 read-only questions (the API version and every
#: entity's description) before it can be used; each is retried this many times while the
#: client is being built, so a busy ICAT that drops a few calls does not make it unbuildable.
BUILD_CALL_ATTEMPTS = 8
#: Attempts of one pool call (``IcatClientPool.call``) that failed fast.
CALL_ATTEMPTS = 4
_building = threading.local()


def _timed_out(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, TimeoutError)


class _RetryWhileBuilding(icat.sslcontext.HTTPSTransport):  # type: ignore[misc]
    """python-icat's transport, retrying requests that failed fast while a client is being
    built (only read-only calls happen then; afterwards every call is sent exactly once)."""

    def send(self, request: Any) -> Any:
        if not getattr(_building, "active", False):
            return super().send(request)
        for attempt in range(BUILD_CALL_ATTEMPTS):
            try:
                return super().send(request)
            except (suds.transport.TransportError, OSError, http.client.HTTPException) as exc:
                if _timed_out(exc) or attempt == BUILD_CALL_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover


icat.client.HTTPSTransport = _RetryWhileBuilding  # python-icat builds its transport from it


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
        # python-icat appends /ICATService/ICAT?wsdl only to a URL without a path, and
        # pydantic's AnyUrl writes the bare server as "http://host:port/".
        self.url = url.rstrip("/") if urllib.parse.urlsplit(url).path in ("", "/") else url
        self._check_cert = check_cert
        self._timeout_seconds = timeout_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[IcatClient] = []
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="icat")
        self.size = size
        self.clients_built = 0

    def _build(self) -> IcatClient:
        _building.active = True
        try:
            client = icat.Client(
                self.url, checkCert=self._check_cert, timeout=self._timeout_seconds
            )
        finally:
            _building.active = False
        # Sessions are ours to end (IcatCatalogue.close); python-icat would log out at exit.
        client.autoLogout = False
        # suds builds a urllib opener (handlers: proxy, HTTPS with python-icat's SSL context)
        # for every request unless its transport has one: build it once (~0.3 ms a call).
        transport = client.options.transport
        transport.proxy = client.options.proxy
        transport.urlopener = transport.u2opener()
        self.clients_built += 1
        log.info("icat_client_built", url=self.url, clients=self.clients_built)
        return client

    async def call(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        """Run ``work(client)`` on a free client in the ICAT thread pool; failures come back
        as Datastore errors named after ``operation``.

        A call that failed fast (a dropped call, a lost answer, a 503) is retried a few times
        at once: every ``work`` here is idempotent (get-or-create, set to a value, search), and
        a registration of many calls would otherwise rarely get through an ICAT that drops
        some. A time-out or a refused credential is raised at once, and so is a failure that
        outlasts these attempts: the layer above retries it (architecture.md, "Retries")."""
        for attempt in range(CALL_ATTEMPTS):
            try:
                return await self._call_once(operation, work)
            except TransientError as exc:
                not_here = isinstance(exc, CredentialError | PeerTimeoutError)
                if not_here or attempt == CALL_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * 3**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        loop = asyncio.get_running_loop()
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            reusable = False
            try:
                if client is None:
                    client = await loop.run_in_executor(self._executor, self._build)
                result = await loop.run_in_executor(self._executor, work, client)
                reusable = True
                peer_call("icat", failed=False)
                return result
            except asyncio.CancelledError:
                # The thread may still be using the client: never hand it to another call.
                raise
            except Exception as exc:
                reusable = client is not None
                error = translate_icat_error(exc, operation=operation)
                # Down, timed out, refusing us: an error; refusing the request: an answer.
                peer_call("icat", failed=isinstance(error, TransientError))
                if error is None:
                    raise
                raise error from exc
            finally:
                if reusable and client is not None:
                    self._idle.append(client)

    async def close(self) -> None:
        self._idle.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def pool_from_settings(
    settings: IcatSettings, *, size: int = 2, timeout_seconds: float = 60.0
) -> IcatClientPool:
    return IcatClientPool(
        str(settings.url),
        check_cert=settings.check_cert,
        size=size,
        timeout_seconds=timeout_seconds,
    )


class FunctionalSession:
    """The functional account's one ICAT session, shared by every pooled client: logged in on
    first use, refreshed when half its lifetime is gone, logged in again after a SESSION fault."""

    def __init__(self, settings: IcatSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.session_id: str | None = None
        self._refresh_at = 0.0
        self.logins = 0

    def current(self, client: IcatClient) -> str:
        with self._lock:
            if self.session_id is None:
                return self._login(client)
            if time.monotonic() >= self._refresh_at:
                try:
                    raw_call(client, "refresh", self.session_id)
                    self._schedule_refresh(client)
                except icat_errors.ICATSessionError:
                    return self._login(client)
            return self.session_id

    def renew(self, client: IcatClient, stale: str) -> str:
        """A new session after ``stale`` was refused (unless another thread did it already)."""
        with self._lock:
            if self.session_id == stale or self.session_id is None:
                return self._login(client)
            return self.session_id

    def _login(self, client: IcatClient) -> str:
        credentials = client.factory.create("credentials")
        for key, value in (
            ("username", self._settings.username),
            ("password", self._settings.password.get_secret_value()),
        ):
            credentials.entry.append({"key": key, "value": value})
        try:
            self.session_id = str(raw_call(client, "login", self._settings.auth, credentials))
        except (
            icat_errors.ICATSessionError,  # what ICAT answers a wrong password
            AuthenticationError,
            ForbiddenError,
        ) as exc:
            raise CredentialError(
                f"ICAT refused the functional account {self._settings.auth}/"
                f"{self._settings.username}: {exc}"
            ) from exc
        self.logins += 1
        self._schedule_refresh(client)
        log.info("icat_functional_login", user=f"{self._settings.auth}/{self._settings.username}")
        return self.session_id

    def _schedule_refresh(self, client: IcatClient) -> None:
        minutes = float(raw_call(client, "getRemainingMinutes", self.session_id))
        self._refresh_at = time.monotonic() + max(minutes * 60.0 / 2.0, 1.0)

    def logout(self, client: IcatClient) -> None:
        with self._lock:
            if self.session_id is not None:
                with contextlib.suppress(icat_errors.ICATSessionError):
                    raw_call(client, "logout", self.session_id)
                self.session_id = None

    def bind(self, work: Callable[[IcatClient], T]) -> Callable[[IcatClient], T]:
        """``work`` run on a client in this session; a session ICAT no longer knows is
        replaced by a new login and ``work`` runs once more."""

        def with_session(client: IcatClient) -> T:
            session_id = self.current(client)
            client.sessionId = session_id
            try:
                return work(client)
            except icat_errors.ICATSessionError:
                client.sessionId = self.renew(client, session_id)
                return work(client)

        return with_session
