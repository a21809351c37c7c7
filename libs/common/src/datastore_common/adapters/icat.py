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
import contextlib
import functools
import http.client
import itertools
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import icat
import icat.exception as icat_errors
import suds
import suds.transport

from datastore_common.domain.archival import (
    ARCHIVAL_PARAMETERS,
    ARCHIVAL_STATE,
    PARAMETER_UNITS,
)
from datastore_common.domain.states import TERMINAL
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
from datastore_common.messages import DatasetSpec, InvestigationSpec
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
        # python-icat appends /ICATService/ICAT?wsdl only to a URL without a path, and
        # pydantic's AnyUrl writes the bare server as "http://host:port/".
        self.url = url.rstrip("/") if urllib.parse.urlsplit(url).path in ("", "/") else url
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


# ---------------------------------------------------------------- functional account side

_IN_CHUNK = 500  # ids or names per IN (...) list: keeps queries and answers moderate
_CREATE_CHUNK = 1000  # beans per createMany


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
        self.session_id = str(raw_call(client, "login", self._settings.auth, credentials))
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
        def search(names: Sequence[str]) -> dict[str, int]:
            found: dict[str, int] = {}
            for chunk in _chunks(names, _IN_CHUNK):
                query = (
                    "SELECT o.id, o.name FROM Datafile o JOIN o.dataset ds "
                    f"WHERE ds.id = {dataset_id} AND o.name IN ({_in_list(chunk)})"
                )
                found.update({str(name): int(i) for i, name in client.search(query)})
            return found

        dataset = client.new("Dataset", id=dataset_id)

        def new_datafile(item: NewDatafile) -> Any:
            spec = item.spec
            fields: dict[str, Any] = {
                k: getattr(spec, k)
                for k in ("description", "doi", "datafileCreateTime", "datafileModTime")
                if getattr(spec, k) is not None
            }
            if spec.datafileFormat is not None:
                format_id = self._reference(
                    client,
                    "DatafileFormat",
                    name=spec.datafileFormat.name,
                    version=spec.datafileFormat.version,
                )
                fields["datafileFormat"] = client.new("DatafileFormat", id=format_id)
            for name, value in (
                ("location", item.location),
                ("fileSize", item.file_size),
                ("checksum", item.checksum),
            ):
                if value is not None:
                    fields[name] = value
            return client.new(
                "Datafile",
                name=spec.name,
                dataset=dataset,
                **fields,
            )

        ids = _get_or_create_many(client, items, lambda i: i.spec.name, search, new_datafile)
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
            rows += list(client.search(query))
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

    async def datafiles_of(self, dataset_ids: Sequence[int]) -> list[CatalogueDatafile]:
        return await self._call(
            "datafiles_of", lambda c: self._datafile_rows(c, "ds.id", dataset_ids)
        )

    # ------------------------------------------------------------ archival parameters

    def _parameter_rows(
        self, client: IcatClient, entity: ArchivalEntity, ids: Sequence[int]
    ) -> list[tuple[int, int, str, int, str | None]]:
        """(parameter id, entity id, type name, type id, value) of archival parameters."""
        if not ids:
            return []
        types = self._parameter_type_ids(client)
        relation = entity.lower()
        rows = []
        for chunk in _chunks(sorted(set(ids)), _IN_CHUNK):
            query = (
                f"SELECT p.id, e.id, t.name, t.id, p.stringValue FROM {entity}Parameter p "
                f"JOIN p.{relation} e JOIN p.type t WHERE e.id IN ({_in_list(chunk)}) "
                f"AND t.id IN ({_in_list(sorted(types.values()))})"
            )
            rows += [
                (int(p), int(e), str(n), int(t), _text(v)) for p, e, n, t, v in client.search(query)
            ]
        return rows

    def _archival_of(
        self, client: IcatClient, entity: ArchivalEntity, ids: Sequence[int]
    ) -> dict[int, dict[str, str]]:
        values: dict[int, dict[str, str]] = {}
        for _, entity_id, name, _, value in self._parameter_rows(client, entity, ids):
            if value is not None:
                values.setdefault(entity_id, {})[name] = value
        return values

    async def set_archival(
        self, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> int:
        unknown = {n for v in values.values() for n in v} - set(ARCHIVAL_PARAMETERS)
        if unknown:
            raise ValueError(f"not archival parameters: {sorted(unknown)}")
        return await self._call("set_archival", lambda c: self._set_archival(c, entity, values))

    def _set_archival(
        self,
        client: IcatClient,
        entity: ArchivalEntity,
        values: Mapping[int, Mapping[str, str | None]],
    ) -> int:
        types = self._parameter_type_ids(client)
        relation = entity.lower()
        existing = {
            (entity_id, name): (parameter_id, value)
            for parameter_id, entity_id, name, _, value in self._parameter_rows(
                client, entity, list(values)
            )
        }

        # Relation stubs are shared by the beans that point at the same object: building a
        # python-icat object costs ~1.5 ms of suds time, more than sending it.
        type_stubs = {name: client.new("ParameterType", id=i) for name, i in types.items()}
        entity_stubs: dict[int, Any] = {}

        def bean(entity_id: int, name: str, value: str, parameter_id: int | None = None) -> Any:
            if entity_id not in entity_stubs:
                entity_stubs[entity_id] = client.new(entity, id=entity_id)
            fields: dict[str, Any] = {
                relation: entity_stubs[entity_id],
                "type": type_stubs[name],
                "stringValue": value,
            }
            if parameter_id is not None:
                fields["id"] = parameter_id
            return client.new(f"{entity}Parameter", **fields)

        creates, updates, deletes = [], [], []
        for entity_id, wanted in values.items():
            for name, value in wanted.items():
                current = existing.get((entity_id, name))
                if current is None:
                    if value is not None:
                        creates.append((entity_id, name, value))
                elif value is None:
                    deletes.append(client.new(f"{entity}Parameter", id=current[0]))
                elif current[1] != value:
                    updates.append(bean(entity_id, name, value, current[0]))
        for chunk in _chunks(creates, _CREATE_CHUNK):
            try:
                client.createMany([bean(*c) for c in chunk])
            except icat_errors.ICATObjectExistsError:
                # Another replica wrote some of them meanwhile: go one by one, last write wins.
                for entity_id, name, value in chunk:
                    try:
                        client.create(bean(entity_id, name, value))
                    except icat_errors.ICATObjectExistsError:
                        rows = self._parameter_rows(client, entity, [entity_id])
                        parameter_id = next(p for p, _, n, _, _ in rows if n == name)
                        client.update(bean(entity_id, name, value, parameter_id))
        for update in updates:
            client.update(update)
        for chunk in _chunks(deletes, _CREATE_CHUNK):
            client.deleteMany(list(chunk))
        return len(creates) + len(updates) + len(deletes)

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
            found = [int(i) for i in client.search(query)]
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
