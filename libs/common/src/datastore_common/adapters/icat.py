"""ICAT adapter: python-icat (SOAP, suds) behind the ``Sessions`` and ``Catalogue`` ports.

Building a python-icat ``Client`` costs about 55 ICAT calls (WSDL, XSD, one ``getEntityInfo``
per entity), so clients are long-lived and built lazily by :class:`IcatClientPool`. suds is
blocking and a suds client is not safe for concurrent use by several threads, so every call
runs on a small dedicated thread pool and each client serves one call at a time.
ICAT faults and wire failures become :mod:`datastore_common.errors` types
(:func:`translate_icat_error`), so callers branch on the kind of failure.

Bulk work (createMany of datafiles and parameters, many parameter updates, searches of
thousands of rows) goes through :class:`SoapWire`: the same SOAP as suds writes, from
templates suds made once, instead of one suds object (~1.5 ms) per bean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import itertools
import math
import re
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import icat
import icat.entity
import icat.exception as icat_errors
import icat.sslcontext
import suds
import suds.properties
import suds.sax.date
import suds.transport
from lxml import etree

from datastore_common.domain.archival import (
    ARCHIVAL_IDS,
    ARCHIVAL_PARAMETERS,
    ARCHIVAL_STATE,
    PARAMETER_UNITS,
)
from datastore_common.domain.states import TERMINAL
from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CredentialError,
    DatastoreError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    TransientError,
)
from datastore_common.logging import get_logger
from datastore_common.messages import DatafileKey, DatasetSpec, InvestigationSpec
from datastore_common.ports import (
    ArchivalEntity,
    ArchivalJob,
    Catalogue,
    CatalogueDatafile,
    CatalogueDataset,
    NewDatafile,
    Sessions,
    UserSession,
    active_jobs_of,
)
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
    status = _suds_http_status(exc)
    if status is not None:
        if status >= 500 or status in (408, 429):
            return PeerUnavailableError(text)
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


def _suds_http_status(exc: BaseException) -> int | None:
    """suds raises a bare ``Exception((status, reason))`` for an HTTP error without a SOAP
    fault (a proxy's 503, say): its status, or None for any other exception."""
    if type(exc) is Exception and len(exc.args) == 1 and isinstance(exc.args[0], tuple):
        status = exc.args[0][0] if exc.args[0] else None
        return status if isinstance(status, int) else None
    return None


#: A new python-icat client asks ICAT ~55 read-only questions (the API version and every
#: entity's description) before it can be used; each is retried this many times while the
#: client is being built, so a busy ICAT that drops a few calls does not make it unbuildable.
BUILD_CALL_ATTEMPTS = 8
#: Attempts of one pool call (``IcatClientPool.call``) on a transient failure.
CALL_ATTEMPTS = 4
_building = threading.local()


class _RetryWhileBuilding(icat.sslcontext.HTTPSTransport):  # type: ignore[misc]
    """python-icat's transport, retrying failed requests while a client is being built
    (only read-only calls happen then; afterwards every call is sent exactly once)."""

    def send(self, request: Any) -> Any:
        if not getattr(_building, "active", False):
            return super().send(request)
        for attempt in range(BUILD_CALL_ATTEMPTS):
            try:
                return super().send(request)
            except (suds.transport.TransportError, OSError, http.client.HTTPException):
                if attempt == BUILD_CALL_ATTEMPTS - 1:
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

        A transient failure (a dropped call, a 503) is retried a few times at once, as the
        FTS3 client does: every ``work`` here is idempotent (get-or-create, set to a value,
        search), and a registration of many calls would otherwise rarely get through an ICAT
        that drops some. Longer outages are the bus's retries; a refused credential is never
        retried here."""
        for attempt in range(CALL_ATTEMPTS):
            try:
                return await self._call_once(operation, work)
            except TransientError as exc:
                if isinstance(exc, CredentialError) or attempt == CALL_ATTEMPTS - 1:
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


# ---------------------------------------------------------------- functional account side

_IN_CHUNK = 500  # ids or names per IN (...) list: keeps queries and answers moderate
_CREATE_CHUNK = 1000  # beans per createMany
_INLINE_UPDATES = 8  # up to this many updates go in the same pooled call as the reads
_UPDATES_PER_CALL_MIN = 25  # below this, another client is not worth a thread hop


def jpql_literal(value: str) -> str:
    """A JPQL string literal (quotes doubled, as ICAT's parser reads them)."""
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: Sequence[int] | Sequence[str]) -> str:
    return ", ".join(str(v) if isinstance(v, int) else jpql_literal(v) for v in values)


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> int | None:
    return None if value is None else int(value)


# ---------------------------------------------------------------- bulk SOAP

_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSD = "http://www.w3.org/2001/XMLSchema"
_ICAT_NS = "http://icatproject.org"
_XSI_TYPE = f"{{{_XSI}}}type"
_XSI_NIL = f"{{{_XSI}}}nil"
_INTEGER_TYPES = frozenset({"long", "int", "short", "byte", "integer", "unsignedInt"})
_FLOAT_TYPES = frozenset({"double", "float", "decimal"})
# Template holes: private-use characters, which suds writes unchanged and no value contains
# (values are inserted after the template is cut).
_HOLE_RE = re.compile("\ue000(\\d+)\ue001")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def _hole(index: int) -> str:
    return f"\ue000{index}\ue001"


def xml_text(value: str) -> str:
    """XML character data for ``value``: the five characters suds escapes, escaped the same
    way (``&apos;``, ``&quot;``...), but every ``&`` (suds leaves one that starts an entity,
    so a name containing ``&amp;`` would reach ICAT as ``&``)."""
    return value.translate(_XML_ESCAPES)


def wire_value(value: Any) -> str:
    """A field value as suds writes it in a request (booleans lower case, dates ISO 8601)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return str(suds.sax.date.DateTime(value))
    return xml_text(str(value))


class _Template:
    """Text with numbered holes, rendered by one %-format (a bean costs microseconds)."""

    def __init__(self, text: str) -> None:
        parts = _HOLE_RE.split(text)
        self.order = [int(i) for i in parts[1::2]]
        self._format = "%s".join(p.replace("%", "%%") for p in parts[0::2])

    def render(self, values: Sequence[str]) -> str:
        return self._format % tuple(values[i] for i in self.order)


@dataclass(frozen=True)
class _BeanShape:
    """Which fields a bean of ``bean`` carries: attributes, and relations (field -> target
    bean) sent as ``<field><id>..</id></field>``; ``with_id`` for update and delete."""

    bean: str
    attributes: tuple[str, ...] = ()
    relations: tuple[tuple[str, str], ...] = ()
    with_id: bool = False

    @property
    def holes(self) -> int:
        return len(self.attributes) + len(self.relations) + int(self.with_id)


class SoapWire:
    """Bulk ICAT calls for one python-icat client, without building a suds object per bean.

    The XML is suds's own: for each operation and bean shape, python-icat and suds marshal
    one bean once (``nosend``) with placeholders, and that text becomes a template. Beans
    are rendered from it (values escaped as XML), the envelope is posted with the client's
    suds transport to the client's SOAP address, the reply is read with lxml. A SOAP fault
    is handed back to suds (``__inject`` reply), so it becomes a ``WebFault`` and then the
    python-icat exception of its ``IcatException`` type, as for any other call.
    """

    def __init__(self, client: IcatClient) -> None:
        self.client = client
        self._methods = client.wsdl.services[0].ports[0].methods
        self._envelopes: dict[str, tuple[_Template, str]] = {}
        self._beans: dict[tuple[str, _BeanShape], _Template] = {}
        self._parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

    # ------------------------------------------------------------ templates

    def _marshal(self, call: Callable[[], Any]) -> str:
        """The request suds would send for ``call()``, with the session id as hole 0."""
        client = self.client
        session_id = client.sessionId
        client.sessionId = _hole(0)
        client.set_options(nosend=True)
        try:
            context = call()
        finally:
            client.set_options(nosend=False)
            client.sessionId = session_id
        return str(context.envelope.decode("utf-8"))

    def bean(self, op: str, shape: _BeanShape) -> _Template:
        """The template of one bean of ``shape`` in a request of ``op``; hole order: id (if
        with_id), attributes, relation ids."""
        key = (op, shape)
        template = self._beans.get(key)
        if template is not None:
            return template
        client = self.client
        holes = iter(range(1, shape.holes + 1))
        fields: dict[str, Any] = {}
        if shape.with_id:
            fields["id"] = _hole(next(holes))
        for name in shape.attributes:
            fields[name] = _hole(next(holes))
        for name, target in shape.relations:
            fields[name] = client.new(target, id=_hole(next(holes)))
        entity = client.new(shape.bean, **fields)
        # What python-icat's Client.<op> sends (its methods return None for void operations).
        instance = icat.entity.Entity.getInstance(entity)
        argument = [instance] if op.endswith("Many") else instance
        text = self._marshal(lambda: getattr(client.service, op)(client.sessionId, argument))
        tag = "beans" if op.endswith("Many") else "bean"
        start = text.index(f"<{tag} ", text.index("</sessionId>"))
        end = text.index(f"</{tag}>", start) + len(tag) + 3
        bean_text = text[start:end]
        found = sorted(int(i) for i in _HOLE_RE.findall(bean_text))
        if found != list(range(1, shape.holes + 1)):
            raise RuntimeError(f"suds left out fields of {shape}: {bean_text}")
        # Holes renumbered from 0 for the bean's own values.
        template = _Template(_HOLE_RE.sub(lambda m: _hole(int(m.group(1)) - 1), bean_text))
        self._beans[key] = template
        if op not in self._envelopes:
            self._envelopes[op] = (_Template(text[:start] + _hole(1) + text[end:]), tag)
        return template

    def _envelope(self, op: str, beans: str) -> bytes:
        template, _ = self._envelopes[op]
        return template.render([xml_text(str(self.client.sessionId)), beans]).encode("utf-8")

    # ------------------------------------------------------------ calls

    def post(self, op: str, envelope: bytes) -> Any:
        """Send a request envelope of ``op``; the reply's response element (lxml)."""
        client = self.client
        method = self._methods[op]
        location = suds.properties.Unskin(client.options).get("location", method.location)
        request = suds.transport.Request(location, envelope)
        action = method.soap.action
        request.headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": action.encode("utf-8") if isinstance(action, str) else action,
            **client.options.headers,
        }
        try:
            reply = client.options.transport.send(request)
        except suds.transport.TransportError as exc:
            content = exc.fp.read() if exc.fp else b""
            if exc.httpcode == 500 and content:
                self._raise_fault(op, content, 500, str(exc))
            raise
        root = etree.fromstring(reply.message, self._parser)
        body = root.find(f"{{{_SOAP_ENV}}}Body")
        if body is None or len(body) == 0:
            raise icat_errors.ICATError(f"icat {op}: a reply without a SOAP body")
        response = body[0]
        if response.tag == f"{{{_SOAP_ENV}}}Fault":
            self._raise_fault(op, reply.message, 200, "SOAP fault with HTTP 200")
        return response

    def _raise_fault(self, op: str, content: bytes, status: int, description: str) -> None:
        """suds reads the fault as for its own calls; python-icat names it."""
        inject = {"reply": content, "status": status, "description": description}
        try:
            getattr(self.client.service, op)(__inject=inject)
        except suds.WebFault as fault:
            raise icat_errors.translateError(fault) from None
        except Exception:  # no fault in it after all: the transport error stands
            return

    def create_many(self, beans: Sequence[tuple[_BeanShape, Sequence[str]]]) -> list[int]:
        """createMany of (shape, wire values in hole order) beans; their ids. Atomic on
        ICAT's side: after a fault nothing was created."""
        if not beans:
            return []
        text = "".join(self.bean("createMany", shape).render(row) for shape, row in beans)
        response = self.post("createMany", self._envelope("createMany", text))
        ids = [int(r.text) for r in response.iterfind("return")]
        if len(ids) != len(beans):
            raise icat_errors.ICATError(f"createMany of {len(beans)} returned {len(ids)} ids")
        return ids

    def create(self, shape: _BeanShape, row: Sequence[str]) -> int:
        template = self.bean("create", shape)
        response = self.post("create", self._envelope("create", template.render(row)))
        return int(response.findtext("return"))

    def update(self, shape: _BeanShape, row: Sequence[str]) -> None:
        template = self.bean("update", shape)
        self.post("update", self._envelope("update", template.render(row)))

    def delete_many(self, bean: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        template = self.bean("deleteMany", _BeanShape(bean, with_id=True))
        beans = "".join(template.render([str(i)]) for i in ids)
        self.post("deleteMany", self._envelope("deleteMany", beans))

    def search(self, query: str) -> list[Any]:
        """``search`` for scalar or multi-column (fieldSet) results: ints, floats, strings,
        booleans, datetimes, None; rows as tuples. Entity results are python-icat's job."""
        if "search" not in self._envelopes:
            text = self._marshal(lambda: self.client.service.search(_hole(0), _hole(1)))
            self._envelopes["search"] = (_Template(text), "query")
        template, _ = self._envelopes["search"]
        envelope = template.render([xml_text(str(self.client.sessionId)), xml_text(query)])
        response = self.post("search", envelope.encode("utf-8"))
        types: dict[str | None, tuple[str | None, str]] = {}
        return [_search_value(r, types) for r in response.iterfind("return")]


def _search_value(
    element: Any, types: dict[str | None, tuple[str | None, str]] | None = None
) -> Any:
    """A search result (or fieldSet field) as python-icat would give it. ``types`` caches the
    resolved ``xsi:type`` values of one reply (its prefixes are declared once, at the top)."""
    if element.get(_XSI_NIL) == "true":
        return None
    types = {} if types is None else types
    attribute = element.get(_XSI_TYPE)
    resolved = types.get(attribute)
    if resolved is None:
        prefix, _, local = (attribute or "xs:string").rpartition(":")
        resolved = types[attribute] = (element.nsmap.get(prefix or None), local)
    namespace, local = resolved
    if namespace == _ICAT_NS and local == "fieldSet":
        return tuple(_search_value(field, types) for field in element)
    if namespace != _XSD:
        raise TypeError(f"search result of type {local!r}: use python-icat's client.search")
    text = element.text
    if text is None:
        return None  # suds reads an empty element as None too
    if local in _INTEGER_TYPES:
        return int(text)
    if local in _FLOAT_TYPES:
        return float(text)
    if local == "boolean":
        return text in ("true", "1")
    if local == "dateTime":
        return suds.sax.date.DateTime(text).value
    return str(text)


class _FunctionalSession:
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
        except (AuthenticationError, ForbiddenError) as exc:
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


class IcatCatalogue(Catalogue):
    """The ``Catalogue`` port on ICAT, as the functional account of ``settings.icat``, scoped
    to the facility ``settings.icat.facility``.

    Few ICAT calls per request: names and ids are searched many at once (``IN`` lists,
    multi-column selects), new entities go in with ``createMany``, reference entities
    (facility, types, instrument, cycle, parameter types) are looked up once per process.
    """

    def __init__(self, settings: IcatSettings, *, pool: IcatClientPool | None = None) -> None:
        self._settings = settings
        self._pool = pool or pool_from_settings(settings)
        self._session = _FunctionalSession(settings)
        self._references: dict[tuple[str, ...], int] = {}
        self._parameter_types: dict[str, int] = {}

    @property
    def facility(self) -> str:
        return self._settings.facility

    async def close(self) -> None:
        await self._pool.call("logout", self._session.logout)
        await self._pool.close()

    async def _call(self, operation: str, work: Callable[[IcatClient], T]) -> T:
        def with_session(client: IcatClient) -> T:
            session_id = self._session.current(client)
            client.sessionId = session_id
            try:
                return work(client)
            except icat_errors.ICATSessionError:
                client.sessionId = self._session.renew(client, session_id)
                return work(client)

        return await self._pool.call(operation, with_session)

    def _wire(self, client: IcatClient) -> SoapWire:
        """The bulk SOAP helper of a pooled client (its templates live as long as it)."""
        wire = getattr(client, "_datastore_wire", None)
        if not isinstance(wire, SoapWire):
            wire = SoapWire(client)
            client._datastore_wire = wire  # goes with the client when the pool drops it
        return wire

    # ------------------------------------------------------------ reference entities

    def _reference(self, client: IcatClient, bean: str, **key: str) -> int:
        """Id of a facility-scoped reference entity (cached: they are never renamed)."""
        cache_key = (bean, *(f"{k}={v}" for k, v in sorted(key.items())))
        found = self._references.get(cache_key)
        if found is not None:
            return found
        conditions = [f"f.name = {jpql_literal(self.facility)}"]
        conditions += [f"o.{name} = {jpql_literal(value)}" for name, value in sorted(key.items())]
        if bean == "Facility":
            query = f"SELECT o.id FROM Facility o WHERE o.name = {jpql_literal(self.facility)}"
        else:
            query = f"SELECT o.id FROM {bean} o JOIN o.facility f WHERE {' AND '.join(conditions)}"
        ids = client.search(query)
        if not ids:
            described = ", ".join(f"{k}={v!r}" for k, v in key.items())
            raise icat_errors.ICATNoObjectError(
                f"{bean} with {described or 'name'} not found in facility {self.facility!r}"
            )
        self._references[cache_key] = int(ids[0])
        return int(ids[0])

    def _parameter_type_ids(self, client: IcatClient) -> dict[str, int]:
        """The archival ParameterTypes by name, created when missing."""
        if len(self._parameter_types) == len(ARCHIVAL_PARAMETERS):
            return self._parameter_types
        facility_id = self._reference(client, "Facility")
        query = (
            "SELECT o.id, o.name FROM ParameterType o JOIN o.facility f "
            f"WHERE f.id = {facility_id} AND o.units = {jpql_literal(PARAMETER_UNITS)} "
            f"AND o.name IN ({_in_list(ARCHIVAL_PARAMETERS)})"
        )
        found = {str(name): int(type_id) for type_id, name in client.search(query)}
        missing = [name for name in ARCHIVAL_PARAMETERS if name not in found]
        for name in missing:
            bean = client.new(
                "ParameterType",
                name=name,
                units=PARAMETER_UNITS,
                valueType="STRING",
                applicableToDataset=True,
                applicableToDatafile=True,
                facility=client.new("Facility", id=facility_id),
            )
            with contextlib.suppress(icat_errors.ICATObjectExistsError):  # a replica was first
                client.create(bean)
        if missing:
            found = {str(name): int(type_id) for type_id, name in client.search(query)}
            log.info("icat_parameter_types_created", names=missing)
        self._parameter_types = found
        return found

    # ------------------------------------------------------------ investigations

    async def ensure_investigation(self, investigation: InvestigationSpec) -> int:
        if investigation.facility.name != self.facility:
            raise InvalidRequestError(
                f"investigation {investigation.name}-{investigation.visitId} names facility "
                f"{investigation.facility.name!r}; this Datastore serves {self.facility!r}"
            )
        return await self._call(
            "ensure_investigation", lambda c: self._investigation(c, investigation)
        )

    def _investigation(self, client: IcatClient, spec: InvestigationSpec) -> int:
        facility_id = self._reference(client, "Facility")
        type_id = self._reference(client, "InvestigationType", name=spec.investigationType.name)
        instrument_id = self._reference(client, "Instrument", name=spec.instrument.name)
        cycle_id = self._reference(client, "FacilityCycle", name=spec.facilityCycle.name)
        query = (
            f"SELECT o.id FROM Investigation o JOIN o.facility f WHERE f.id = {facility_id} "
            f"AND o.name = {jpql_literal(spec.name)} AND o.visitId = {jpql_literal(spec.visitId)}"
        )

        def new_investigation() -> Any:
            fields = {
                k: getattr(spec, k)
                for k in ("summary", "doi", "startDate", "endDate", "releaseDate")
                if getattr(spec, k) is not None
            }
            return client.new(
                "Investigation",
                name=spec.name,
                visitId=spec.visitId,
                title=spec.title,
                facility=client.new("Facility", id=facility_id),
                type=client.new("InvestigationType", id=type_id),
                **fields,
            )

        investigation_id, created = _get_or_create(client, query, new_investigation)
        investigation = client.new("Investigation", id=investigation_id)
        links = (
            ("InvestigationInstrument", "instrument", "Instrument", instrument_id),
            ("InvestigationFacilityCycle", "facilityCycle", "FacilityCycle", cycle_id),
        )
        for bean, relation, target, target_id in links:
            link_query = (
                f"SELECT o.id FROM {bean} o JOIN o.investigation i JOIN o.{relation} r "
                f"WHERE i.id = {investigation_id} AND r.id = {target_id}"
            )
            link = client.new(
                bean, investigation=investigation, **{relation: client.new(target, id=target_id)}
            )
            # A new investigation has no links yet: no need to look for them first.
            _get_or_create(
                client, link_query, functools.partial(_same, link), search_first=not created
            )
        return investigation_id

    # ------------------------------------------------------------ datasets

    async def ensure_datasets(
        self, investigation_id: int, datasets: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        return await self._call(
            "ensure_datasets", lambda c: self._datasets_in(c, investigation_id, datasets)
        )

    def _datasets_in(
        self, client: IcatClient, investigation_id: int, specs: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        def search(names: Sequence[str]) -> dict[str, int]:
            found: dict[str, int] = {}
            for chunk in _chunks(names, _IN_CHUNK):
                query = (
                    "SELECT o.id, o.name FROM Dataset o JOIN o.investigation i "
                    f"WHERE i.id = {investigation_id} AND o.name IN ({_in_list(chunk)})"
                )
                found.update({str(name): int(i) for i, name in client.search(query)})
            return found

        def new_dataset(spec: DatasetSpec) -> Any:
            type_id = self._reference(client, "DatasetType", name=spec.datasetType.name)
            fields = {
                k: getattr(spec, k)
                for k in ("description", "doi", "location", "startDate", "endDate")
                if getattr(spec, k) is not None
            }
            return client.new(
                "Dataset",
                name=spec.name,
                complete=spec.complete,
                investigation=client.new("Investigation", id=investigation_id),
                type=client.new("DatasetType", id=type_id),
                **fields,
            )

        ids = _get_or_create_many(client, specs, lambda s: s.name, search, new_dataset)
        archival = self._archival_of(client, "Dataset", list(ids.values()))
        return {
            name: CatalogueDataset(dataset_id, investigation_id, name, archival.get(dataset_id, {}))
            for name, dataset_id in ids.items()
        }

    async def datasets_by_id(self, dataset_ids: Sequence[int]) -> list[CatalogueDataset]:
        def work(client: IcatClient) -> list[CatalogueDataset]:
            rows: list[tuple[int, int, str]] = []
            for chunk in _chunks(sorted(set(dataset_ids)), _IN_CHUNK):
                query = (
                    "SELECT o.id, i.id, o.name FROM Dataset o JOIN o.investigation i "
                    f"WHERE o.id IN ({_in_list(chunk)})"
                )
                rows += [(int(d), int(i), str(n)) for d, i, n in client.search(query)]
            archival = self._archival_of(client, "Dataset", [r[0] for r in rows])
            return [CatalogueDataset(d, i, n, archival.get(d, {})) for d, i, n in rows]

        return await self._call("datasets_by_id", work)

    # ------------------------------------------------------------ datafiles

    async def ensure_datafiles(
        self, dataset_id: int, datafiles: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        return await self._call(
            "ensure_datafiles", lambda c: self._datafiles_in(c, dataset_id, datafiles)
        )

    def _datafiles_in(
        self, client: IcatClient, dataset_id: int, items: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        wire = self._wire(client)

        def search(names: Sequence[str]) -> dict[str, int]:
            found: dict[str, int] = {}
            for chunk in _chunks(names, _IN_CHUNK):
                query = (
                    "SELECT o.id, o.name FROM Datafile o JOIN o.dataset ds "
                    f"WHERE ds.id = {dataset_id} AND o.name IN ({_in_list(chunk)})"
                )
                found.update({str(name): int(i) for i, name in wire.search(query)})
            return found

        def new_datafile(item: NewDatafile) -> tuple[_BeanShape, list[str]]:
            spec = item.spec
            fields: dict[str, Any] = {
                "checksum": item.checksum,
                "datafileCreateTime": spec.datafileCreateTime,
                "datafileModTime": spec.datafileModTime,
                "description": spec.description,
                "doi": spec.doi,
                "fileSize": item.file_size,
                "location": item.location,
                "name": spec.name,
            }
            present = {k: v for k, v in fields.items() if v is not None}
            relations = [("dataset", "Dataset", dataset_id)]
            if spec.datafileFormat is not None:
                format_id = self._reference(
                    client,
                    "DatafileFormat",
                    name=spec.datafileFormat.name,
                    version=spec.datafileFormat.version,
                )
                relations.append(("datafileFormat", "DatafileFormat", format_id))
            shape = _BeanShape(
                "Datafile", tuple(present), tuple((name, bean) for name, bean, _ in relations)
            )
            row = [wire_value(v) for v in present.values()] + [str(i) for _, _, i in relations]
            return shape, row

        ids = _get_or_create_many_on_wire(wire, items, lambda i: i.spec.name, search, new_datafile)
        records = {r.name: r for r in self._datafile_rows(client, "o.id", list(ids.values()))}
        # A datafile that existed keeps its id; what we now know of its bytes replaces stale
        # values (e.g. the placeholder size and checksum of a first, failed attempt).
        for item in items:
            record = records[item.spec.name]
            wanted = {
                "location": item.location,
                "fileSize": item.file_size,
                "checksum": item.checksum,
            }
            current = {
                "location": record.location,
                "fileSize": record.file_size,
                "checksum": record.checksum,
            }
            changed = {k: v for k, v in wanted.items() if v is not None and current[k] != v}
            if changed:
                bean = client.get("Datafile INCLUDE 1", record.datafile_id)
                for name, value in changed.items():
                    setattr(bean, name, value)
                client.update(bean)
                records[item.spec.name] = replace(
                    record,
                    location=bean.location,
                    file_size=_number(bean.fileSize),
                    checksum=_text(bean.checksum),
                )
        return records

    def _datafile_rows(
        self, client: IcatClient, key: str, ids: Sequence[int]
    ) -> list[CatalogueDatafile]:
        """Datafiles whose ``key`` (``o.id`` or ``ds.id``) is in ``ids``, with archival."""
        rows = []
        for chunk in _chunks(sorted(set(ids)), _IN_CHUNK):
            query = (
                "SELECT o.id, ds.id, o.name, o.location, o.fileSize, o.checksum "
                f"FROM Datafile o JOIN o.dataset ds WHERE {key} IN ({_in_list(chunk)})"
            )
            rows += self._wire(client).search(query)
        if key == "ds.id":  # a whole dataset's parameters: one query per dataset chunk
            archival = self._archival_of(client, "Datafile", ids, of_datasets=True)
        else:
            archival = self._archival_of(client, "Datafile", [int(row[0]) for row in rows])
        return [
            CatalogueDatafile(
                datafile_id=int(df_id),
                dataset_id=int(ds_id),
                name=str(name),
                location=_text(location),
                file_size=_number(size),
                checksum=_text(checksum),
                archival=archival.get(int(df_id), {}),
            )
            for df_id, ds_id, name, location, size, checksum in rows
        ]

    async def datafiles_by_id(self, datafile_ids: Sequence[int]) -> list[CatalogueDatafile]:
        return await self._call(
            "datafiles_by_id", lambda c: self._datafile_rows(c, "o.id", datafile_ids)
        )

    async def find_datafiles(self, keys: Sequence[DatafileKey]) -> dict[DatafileKey, int]:
        groups: dict[tuple[str, str, str], list[DatafileKey]] = {}
        for key in keys:
            groups.setdefault((key.investigation, key.visit_id, key.dataset), []).append(key)

        def work(client: IcatClient) -> dict[DatafileKey, int]:
            found: dict[DatafileKey, int] = {}
            for (investigation, visit_id, dataset), group in groups.items():
                by_name = {key.datafile: key for key in group}
                for chunk in _chunks(sorted(by_name), _IN_CHUNK):
                    query = (
                        "SELECT o.id, o.name FROM Datafile o JOIN o.dataset ds "
                        "JOIN ds.investigation i JOIN i.facility f "
                        f"WHERE f.name = {jpql_literal(self.facility)} "
                        f"AND i.name = {jpql_literal(investigation)} "
                        f"AND i.visitId = {jpql_literal(visit_id)} "
                        f"AND ds.name = {jpql_literal(dataset)} AND o.name IN ({_in_list(chunk)})"
                    )
                    for datafile_id, name in client.search(query):
                        found[by_name[str(name)]] = int(datafile_id)
            return found

        return await self._call("find_datafiles", work)

    async def datafiles_of(self, dataset_ids: Sequence[int]) -> list[CatalogueDatafile]:
        return await self._call(
            "datafiles_of", lambda c: self._datafile_rows(c, "ds.id", dataset_ids)
        )

    # ------------------------------------------------------------ archival parameters

    def _parameter_rows(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        ids: Sequence[int],
        *,
        of_datasets: bool = False,
    ) -> list[tuple[int, int, str, int, str | None]]:
        """(parameter id, entity id, type name, type id, value) of archival parameters of
        the entities ``ids`` (or, ``of_datasets``, of the Datafiles of the Datasets ``ids``)."""
        if not ids:
            return []
        types = self._parameter_type_ids(client)
        relation = entity.lower()
        join, key = (" JOIN e.dataset ds", "ds.id") if of_datasets else ("", "e.id")
        rows = []
        for chunk in _chunks(sorted(set(ids)), _IN_CHUNK):
            query = (
                f"SELECT p.id, e.id, t.name, t.id, p.stringValue FROM {entity}Parameter p "
                f"JOIN p.{relation} e{join} JOIN p.type t WHERE {key} IN ({_in_list(chunk)}) "
                f"AND t.id IN ({_in_list(sorted(types.values()))})"
            )
            rows += [
                (int(p), int(e), str(n), int(t), _text(v))
                for p, e, n, t, v in self._wire(client).search(query)
            ]
        return rows

    def _archival_of(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        ids: Sequence[int],
        *,
        of_datasets: bool = False,
    ) -> dict[int, dict[str, str]]:
        values: dict[int, dict[str, str]] = {}
        rows = self._parameter_rows(client, entity, ids, of_datasets=of_datasets)
        for _, entity_id, name, _, value in rows:
            if value is not None:
                values.setdefault(entity_id, {})[name] = value
        return values

    async def set_archival(
        self, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> int:
        unknown = {n for v in values.values() for n in v} - set(ARCHIVAL_PARAMETERS)
        if unknown:
            raise ValueError(f"not archival parameters: {sorted(unknown)}")
        written, updates = await self._call(
            "set_archival", lambda c: self._set_archival(c, entity, values)
        )
        await self._update_concurrently("set_archival", updates)
        return written

    async def _update_concurrently(
        self, operation: str, updates: Sequence[tuple[_BeanShape, Sequence[str]]]
    ) -> None:
        """ICAT's SOAP API has no bulk update: independent updates go out on up to the pool's
        size of clients at once. Every group runs to its end; the first failure is raised."""
        if not updates:
            return
        groups = max(1, min(self._pool.size, len(updates) // _UPDATES_PER_CALL_MIN))
        size = math.ceil(len(updates) / groups)

        def work(group: Sequence[tuple[_BeanShape, Sequence[str]]]) -> Callable[[Any], None]:
            def run(client: IcatClient) -> None:
                wire = self._wire(client)
                for shape, row in group:
                    wire.update(shape, row)

            return run

        results = await asyncio.gather(
            *(self._call(operation, work(chunk)) for chunk in _chunks(updates, size)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _set_archival(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        values: Mapping[int, Mapping[str, str | None]],
    ) -> tuple[int, list[tuple[_BeanShape, Sequence[str]]]]:
        """Creates and deletes of archival parameters; (count written, the updates still to
        send) unless only a few updates are needed, which are sent here."""
        wire = self._wire(client)
        types = self._parameter_type_ids(client)
        relation = entity.lower()
        existing = {
            (entity_id, name): (parameter_id, value)
            for parameter_id, entity_id, name, _, value in self._parameter_rows(
                client, entity, list(values)
            )
        }
        new = _BeanShape(
            f"{entity}Parameter",
            ("stringValue",),
            (("type", "ParameterType"), (relation, entity)),
        )
        changed = replace(new, with_id=True)

        def row(entity_id: int, name: str, value: str) -> list[str]:
            return [xml_text(value), str(types[name]), str(entity_id)]

        creates: list[tuple[int, str, str]] = []
        updates: list[tuple[_BeanShape, Sequence[str]]] = []
        deletes: list[int] = []
        for entity_id, wanted in values.items():
            for name, value in wanted.items():
                current = existing.get((entity_id, name))
                if current is None:
                    if value is not None:
                        creates.append((entity_id, name, value))
                elif value is None:
                    deletes.append(current[0])
                elif current[1] != value:
                    updates.append((changed, [str(current[0]), *row(entity_id, name, value)]))
        for chunk in _chunks(creates, _CREATE_CHUNK):
            try:
                wire.create_many([(new, row(*c)) for c in chunk])
            except icat_errors.ICATObjectExistsError:
                # Another replica wrote some of them meanwhile: go one by one, last write wins.
                for entity_id, name, value in chunk:
                    try:
                        wire.create(new, row(entity_id, name, value))
                    except icat_errors.ICATObjectExistsError:
                        rows = self._parameter_rows(client, entity, [entity_id])
                        parameter_id = next(p for p, _, n, _, _ in rows if n == name)
                        wire.update(changed, [str(parameter_id), *row(entity_id, name, value)])
        for id_chunk in _chunks(deletes, _CREATE_CHUNK):
            wire.delete_many(f"{entity}Parameter", id_chunk)
        written = len(creates) + len(updates) + len(deletes)
        if len(updates) <= _INLINE_UPDATES:
            for shape, values_row in updates:
                wire.update(shape, values_row)
            return written, []
        return written, updates

    async def claim_dataset(self, dataset_id: int, job_ids: str) -> str | None:
        def work(client: IcatClient) -> str | None:
            # ICAT's uniqueness of (dataset, type) on DatasetParameter makes the create the
            # claim: of two requests creating it at once, exactly one succeeds.
            wire = self._wire(client)
            types = self._parameter_type_ids(client)
            shape = _BeanShape(
                "DatasetParameter",
                ("stringValue",),
                (("type", "ParameterType"), ("dataset", "Dataset")),
            )
            try:
                wire.create(shape, [xml_text(job_ids), str(types[ARCHIVAL_IDS]), str(dataset_id)])
                return None
            except icat_errors.ICATObjectExistsError:
                rows = self._parameter_rows(client, "Dataset", [dataset_id])
                return next((v or "" for _, _, n, _, v in rows if n == ARCHIVAL_IDS), "")

        return await self._call("claim_dataset", work)

    # ------------------------------------------------------------ totals

    async def update_totals(self, dataset_ids: Sequence[int]) -> None:
        await self._call("update_totals", lambda c: self._update_totals(c, dataset_ids))

    def _update_totals(self, client: IcatClient, dataset_ids: Sequence[int]) -> None:
        investigation_ids: set[int] = set()
        for dataset_id in sorted(set(dataset_ids)):
            where = f"FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}"
            dataset = client.get("Dataset INCLUDE 1", dataset_id)
            investigation_ids.add(int(dataset.investigation.id))
            _write_totals(client, dataset, where)
        for investigation_id in sorted(investigation_ids):
            where = (
                "FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
                f"WHERE i.id = {investigation_id}"
            )
            _write_totals(client, client.get("Investigation INCLUDE 1", investigation_id), where)

    # ------------------------------------------------------------ resync

    async def active_archival_jobs(self) -> list[ArchivalJob]:
        return await self._call("active_archival_jobs", self._active_jobs)

    def _active_jobs(self, client: IcatClient) -> list[ArchivalJob]:
        state_type = self._parameter_type_ids(client)[ARCHIVAL_STATE]
        datafile_ids: list[int] = []
        page = 5000
        for start in itertools.count(0, page):
            query = (
                "SELECT df.id FROM DatafileParameter p JOIN p.datafile df JOIN p.type t "
                f"WHERE t.id = {state_type} AND p.stringValue NOT IN "
                f"({_in_list(sorted(TERMINAL))}) ORDER BY df.id LIMIT {start}, {page}"
            )
            found = [int(i) for i in self._wire(client).search(query)]
            datafile_ids += found
            if len(found) < page:
                break
        return active_jobs_of(self._datafile_rows(client, "o.id", datafile_ids))


def _write_totals(client: IcatClient, entity: Any, where: str) -> None:
    """Set an entity's fileCount/fileSize from its datafiles; no write when unchanged."""
    count = int((client.search(f"SELECT COUNT(o) {where}") or [0])[0])
    size = int((client.search(f"SELECT SUM(o.fileSize) {where}") or [0])[0] or 0)
    if _number(entity.fileCount) == count and _number(entity.fileSize) == size:
        return
    entity.fileCount = count
    entity.fileSize = size
    client.update(entity)


def _same(value: T) -> T:
    return value


def _get_or_create(
    client: IcatClient,
    query: str,
    make: Callable[[], Any],
    *,
    search_first: bool = True,
) -> tuple[int, bool]:
    """(id, created) of the one entity ``query`` (a ``SELECT o.id``) finds, creating it with
    ``make()`` when missing. A replica creating it first (OBJECT_ALREADY_EXISTS) is fine."""
    if search_first:
        found = client.search(query)
        if found:
            return int(found[0]), False
    try:
        return int(client.create(make())), True
    except icat_errors.ICATObjectExistsError:
        found = client.search(query)
        if not found:
            raise
        return int(found[0]), False


def _get_or_create_many(
    client: IcatClient,
    items: Sequence[T],
    name_of: Callable[[T], str],
    search: Callable[[Sequence[str]], dict[str, int]],
    make: Callable[[T], Any],
) -> dict[str, int]:
    """Ids by name of every item, creating the missing ones with createMany. When a replica
    races (OBJECT_ALREADY_EXISTS) the chunk goes one by one, keeping what the other made."""
    names = [name_of(item) for item in items]
    ids = search(names)
    missing = [item for item in items if name_of(item) not in ids]
    for chunk in _chunks(missing, _CREATE_CHUNK):
        try:
            created = client.createMany([make(item) for item in chunk])
            ids.update({name_of(item): int(i) for item, i in zip(chunk, created, strict=True)})
        except icat_errors.ICATObjectExistsError:
            for item in chunk:
                with contextlib.suppress(icat_errors.ICATObjectExistsError):
                    ids[name_of(item)] = int(client.create(make(item)))
            ids.update(search([name_of(item) for item in chunk if name_of(item) not in ids]))
    return {name: ids[name] for name in names}


def _get_or_create_many_on_wire(
    wire: SoapWire,
    items: Sequence[T],
    name_of: Callable[[T], str],
    search: Callable[[Sequence[str]], dict[str, int]],
    make: Callable[[T], tuple[_BeanShape, Sequence[str]]],
) -> dict[str, int]:
    """:func:`_get_or_create_many` with beans rendered from templates (:class:`SoapWire`)."""
    names = [name_of(item) for item in items]
    ids = search(names)
    missing = [item for item in items if name_of(item) not in ids]
    for chunk in _chunks(missing, _CREATE_CHUNK):
        beans = [make(item) for item in chunk]
        try:
            created = wire.create_many(beans)
            ids.update({name_of(item): i for item, i in zip(chunk, created, strict=True)})
        except icat_errors.ICATObjectExistsError:
            for item, (shape, row) in zip(chunk, beans, strict=True):
                with contextlib.suppress(icat_errors.ICATObjectExistsError):
                    ids[name_of(item)] = wire.create(shape, row)
            ids.update(search([name_of(item) for item in chunk if name_of(item) not in ids]))
    return {name: ids[name] for name in names}
