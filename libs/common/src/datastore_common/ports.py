"""Ports: what the services need from the outside world, as small abstract classes, one
section per role (publisher, queue depths, storage, transfers, ICAT as a user, the catalogue, the
vocabulary, what a user sees in ICAT: restore selections, archival, look-ups).

Handlers depend on these, never on aio-pika, httpx, python-icat or XRootD directly. Real
adapters live in ``datastore_common.adapters``; in-memory fakes for unit tests in
``datastore_common.testing``.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from datastore_common.domain.archival import (
    ArchivalJob,
    ArchivalRecords,
    CatalogueDatafile,
    CatalogueDataset,
    CatalogueInvestigation,
)
from datastore_common.domain.plan import RestoreItem
from datastore_common.errors import PermanentError
from datastore_common.messages import (
    DatafileKey,
    DatafileSpec,
    DatasetSpec,
    InvestigationSpec,
    Payload,
    PlannedJob,
)


class Publisher(ABC):
    """Publishes a payload; returns once the broker has stored it. ``message_id`` names the
    message for receivers to de-duplicate by (a repeated publish of one thing); a fresh one
    when not given."""

    @abstractmethod
    async def publish(
        self,
        data: Payload,
        *,
        correlation_id: str,
        user: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class StoredFile:
    size: int
    checksum: str  # "adler32:<8 hex>"


class Storage(ABC):
    """A look at a storage endpoint (the instrument data cache; the tape, audited; the user
    data cache); ``remove`` only for the restore cleaner, on the user data cache."""

    @abstractmethod
    async def describe(self, url: str) -> StoredFile | None:
        """Size and adler32 of a file, or None when it does not exist."""

    @abstractmethod
    async def list_tree(self, url: str) -> dict[str, int]:
        """Every file below the folder ``url``, at any depth, by its path relative to it
        (``a/b/c.nxs``), with its size in bytes; {} when the folder does not exist (the
        audit's look at the tape namespace)."""

    async def remove(self, url: str) -> None:
        """Remove a file (NotFoundError when it is not there). Read-only storages refuse."""
        raise PermanentError(f"this storage is read-only here: not removing {url}")

    async def describe_many(self, urls: Sequence[str]) -> dict[str, StoredFile | None]:
        """``describe`` every URL concurrently (the adapter bounds how many at once). The
        first failure cancels the calls still running, rather than leaving them to load the
        server while the message waits for its retry, and is raised."""
        tasks = {url: asyncio.ensure_future(self.describe(url)) for url in dict.fromkeys(urls)}
        if not tasks:
            return {}
        try:
            await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a failure, or our own cancellation: stop the calls still running
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        for task in tasks.values():  # the first failure in request order, as itself
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
        return {url: task.result() for url, task in tasks.items()}


@dataclass(frozen=True)
class FileProgress:
    file_id: int | None
    source: str
    destination: str
    state: str
    reason: str | None = None
    metadata: Mapping[str, object] | None = None


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    state: str
    reason: str | None
    files: tuple[FileProgress, ...]


class TransferService(ABC):
    """FTS3, as the submitter and poller use it."""

    endpoint: str

    @abstractmethod
    async def vo(self) -> str:
        """The VO deterministic job ids are derived from."""

    @abstractmethod
    async def submit(self, job: PlannedJob) -> str:
        """Submit a planned job under its sid; an existing job with that sid is success."""

    @abstractmethod
    async def status(self, job_ids: Sequence[str]) -> Mapping[str, JobProgress | None]:
        """Bulk status; None for ids FTS does not know."""

    @abstractmethod
    async def cancel(self, job_id: str) -> JobProgress: ...


@dataclass(frozen=True)
class QueueDepth:
    """A queue as the broker counts it now: messages ready and consumers attached; both
    None when the queue is not declared on the broker."""

    queue: str
    messages: int | None
    consumers: int | None


class QueueDepths(ABC):
    """The broker's queues, counted without touching a message (the operators' view)."""

    @abstractmethod
    async def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        """Each queue's depth, in the order given; PeerUnavailableError when the broker
        cannot be asked."""


@dataclass(frozen=True)
class UserSession:
    session_id: str
    user_name: str  # ICAT's plugin/name


class Sessions(ABC):
    """ICAT as the *user* sees it: login and checking a session (gateway)."""

    @abstractmethod
    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        """A new ICAT session id; SessionRefusedError when the credentials are refused."""

    @abstractmethod
    async def check(self, session_id: str) -> UserSession:
        """Who owns the session; SessionRefusedError when unknown or expired."""


ArchivalEntity = Literal["Dataset", "Datafile"]


@dataclass(frozen=True)
class NewDatafile:
    """A datafile to get-or-create in a dataset: the request's fields plus what we computed."""

    spec: DatafileSpec
    location: str
    file_size: int | None
    checksum: str | None


class Catalogue(ABC):
    """ICAT as the functional account writes it (icat-writer; status-poller resync; audit).

    Get-or-create goes by ICAT's uniqueness keys and is safe when replicas race. Archival
    parameters are the STRING parameters of ``domain.archival`` on Dataset and Datafile.
    """

    @abstractmethod
    async def ensure_investigation(self, investigation: InvestigationSpec) -> int:
        """Get-or-create the Investigation (facility, name, visitId) and its links to the
        Instrument and FacilityCycle; its id. NotFoundError if a referenced entity is missing."""

    @abstractmethod
    async def ensure_datasets(
        self, investigation_id: int, datasets: Sequence[DatasetSpec]
    ) -> dict[str, CatalogueDataset]:
        """Get-or-create datasets by name in the investigation; by name, with the archival
        parameters they had (an existing dataset is not modified)."""

    @abstractmethod
    async def ensure_datafiles(
        self, dataset_id: int, datafiles: Sequence[NewDatafile]
    ) -> dict[str, CatalogueDatafile]:
        """Get-or-create datafiles by name in the dataset; an existing one gets ``location``,
        ``file_size`` and ``checksum`` updated when they differ. By name, with archival
        parameters as they were."""

    @abstractmethod
    async def set_archival(
        self, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> int:
        """Upsert archival parameters: {entity id: {parameter name: value}}; None removes
        the parameter. Unchanged values cost no write. Returns how many were written."""

    @abstractmethod
    async def datafiles_by_id(self, datafile_ids: Sequence[int]) -> list[CatalogueDatafile]:
        """The datafiles that exist among these ids, with archival parameters."""

    @abstractmethod
    async def datafiles_of(self, dataset_ids: Sequence[int]) -> list[CatalogueDatafile]:
        """Every datafile of these datasets, with archival parameters."""

    @abstractmethod
    async def datasets_by_id(self, dataset_ids: Sequence[int]) -> list[CatalogueDataset]:
        """The datasets that exist among these ids, with archival parameters."""

    @abstractmethod
    async def update_totals(self, dataset_ids: Sequence[int]) -> None:
        """Set fileSize and fileCount of these datasets and of their investigations to the
        sums over their datafiles (as DataGateway shows them)."""

    @abstractmethod
    async def claim_dataset(
        self, dataset_id: int, job_ids: str, *, replacing: str | None = None
    ) -> str | None:
        """Atomically record ``job_ids`` as the dataset's "Archival ids": None when claimed,
        else the ids recorded instead (another request's, or ours; "" if being replaced).

        Without ``replacing`` the dataset must have no ids yet; with it, its ids must still be
        exactly ``replacing`` (an ended archive's), and exactly one of several requests
        swapping them at once wins (compare and swap)."""

    @abstractmethod
    async def find_datafiles(self, keys: Sequence[DatafileKey]) -> dict[DatafileKey, int]:
        """The ids of those datafiles that exist, by their ICAT keys (no error for others)."""

    @abstractmethod
    async def archived_datafiles(
        self, *, under: str = "", after: int = 0, limit: int = 1000
    ) -> list[CatalogueDatafile]:
        """A page of the facility's archived datafiles, with archival parameters: those whose
        "Archival state" is FINISHED as the functional account wrote it (ICAT's ``modId``;
        one anyone else wrote does not count), by id from the first above ``after``, at
        most ``limit``. ``under``: only those whose location lies in this folder (a relative
        path of whole components, e.g. ``instrument/cycle``; "" for all). The audit."""

    @abstractmethod
    async def active_archival_jobs(self) -> list[ArchivalJob]:
        """Every job id in the "Archival ids" of a datafile whose "Archival state" is not
        terminal, with those datafiles (status-poller resync)."""


#: The kinds of ICAT reference entity an archive request names, as its JSON fields call them.
VocabularyKind = Literal[
    "facility",
    "investigationType",
    "instrument",
    "facilityCycle",
    "datasetType",
    "datafileFormat",
    "parameterType",
    "sampleType",
    "technique",
]
VOCABULARY_KINDS: tuple[VocabularyKind, ...] = (
    "facility",
    "investigationType",
    "instrument",
    "facilityCycle",
    "datasetType",
    "datafileFormat",
    "parameterType",
    "sampleType",
    "technique",
)
#: A name of the vocabulary: a name, or its two-part ICAT key for a datafileFormat
#: (name, version), a parameterType (name, units) and a sampleType (name, molecularFormula).
Term = str | tuple[str, str]
#: What the second part of a two-part term is called, by kind.
SECOND_KEY: dict[VocabularyKind, str] = {
    "datafileFormat": "version",
    "parameterType": "units",
    "sampleType": "molecularFormula",
}


def terms_of(investigations: Sequence[InvestigationSpec]) -> dict[VocabularyKind, set[Term]]:
    """Every reference name the investigations use, by kind (kinds not used are left out)."""
    terms: dict[VocabularyKind, set[Term]] = {}

    def add(kind: VocabularyKind, term: Term) -> None:
        terms.setdefault(kind, set()).add(term)

    for inv in investigations:
        add("facility", inv.facility.name)
        add("investigationType", inv.investigationType.name)
        add("instrument", inv.instrument.name)
        add("facilityCycle", inv.facilityCycle.name)
        for dataset in inv.datasets:
            add("datasetType", dataset.datasetType.name)
            for parameter in dataset.parameters:
                add("parameterType", parameter.type_key)
            if dataset.sample is not None:
                kind = dataset.sample.sample_type
                add("sampleType", (kind.name, kind.molecularFormula))
                for parameter in dataset.sample.parameters:
                    add("parameterType", parameter.type_key)
            for technique in dataset.datasetTechniques:
                add("technique", technique.name)
            for instrument in dataset.datasetInstruments:
                add("instrument", instrument.name)
            for datafile in dataset.datafiles:
                form = datafile.datafileFormat
                if form is not None:
                    add("datafileFormat", (form.name, form.version))
                for parameter in datafile.parameters:
                    add("parameterType", parameter.type_key)
    return terms


def describe_unknown(unknown: Mapping[VocabularyKind, set[Term]], facility: str) -> list[str]:
    """One phrase per unknown name, kinds in request order, names sorted."""
    phrases = []
    for kind in VOCABULARY_KINDS:
        for term in sorted(unknown.get(kind, ()), key=str):
            if kind == "facility":
                why = (
                    "it is not in ICAT (icat.facility)"
                    if term == facility
                    else f"this Datastore serves facility {facility!r} (icat.facility)"
                )
                phrases.append(f"unknown facility {term!r}: {why}")
            elif isinstance(term, tuple):
                name, second = term
                phrases.append(
                    f"unknown {kind} {name!r} {SECOND_KEY[kind]} {second!r} in facility "
                    f"{facility!r}"
                )
            elif kind == "technique":  # Techniques are not a facility's: ICAT-wide names
                phrases.append(f"unknown technique {term!r}")
            else:
                phrases.append(f"unknown {kind} {term!r} in facility {facility!r}")
    return phrases


def unknown_names_text(
    unknown: Mapping[VocabularyKind, set[Term]], facility: str, *, at_most: int = 20
) -> str:
    """``describe_unknown`` in one line, naming at most ``at_most`` ("" when none)."""
    phrases = describe_unknown(unknown, facility)
    more = len(phrases) - at_most
    named = "; ".join(phrases[:at_most])
    return f"{named}; and {more} more" if more > 0 else named


class Vocabulary(ABC):
    """ICAT's reference entities (facility, types, instruments, cycles, formats): which of
    the names a request uses exist, so a request the workers would refuse is refused first."""

    #: The facility this Datastore serves (``icat.facility``): every other kind is looked up
    #: in it, and a request naming another facility names an unknown one.
    facility: str

    @abstractmethod
    async def unknown(
        self, terms: Mapping[VocabularyKind, Collection[Term]]
    ) -> dict[VocabularyKind, set[Term]]:
        """The terms ICAT does not know, by kind (only kinds with some): a facility other than
        ``facility`` or missing from ICAT, other names missing in ``facility``. Asks ICAT
        once per kind; a TransientError when it cannot answer."""


def describe_ids(missing: Mapping[str, Sequence[int]]) -> str:
    """``"Investigation 4, 5; Dataset 9"`` for {entity: ids} (entities without ids left out)."""
    return "; ".join(
        f"{entity} {', '.join(str(i) for i in sorted(ids))}"
        for entity, ids in missing.items()
        if ids
    )


class Selections(ABC):
    """ICAT as the *user* sees it (gateway): what a restore selection means, how the archival
    of a dataset or an investigation stands, which investigations and datasets bear a name.
    Everything is read with *their* session, so ICAT's own authorization decides what they
    may restore or see: an id they may not read is indistinguishable from one that does not
    exist, and both are refused by name (NotFoundError). SessionRefusedError when the session
    is refused; nothing here asks FTS."""

    @abstractmethod
    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
        *,
        max_datafiles: int | None = None,
    ) -> list[RestoreItem]:
        """Every datafile named directly or through its dataset or investigation, once each,
        ordered by (dataset id, location), with its place in ICAT's hierarchy (the planner
        rebuilds the location from it and refuses a stored location that differs; its ICAT
        names, ``RestoreItem.key``, come from it too).

        Raises TooLargeError as soon as more than ``max_datafiles`` datafiles are found (no
        more are read), NotFoundError naming the ids the user cannot read (or that do not
        exist), NotArchivedError when any resolved datafile's "Archival state" is not
        FINISHED or was not written by the functional account (ICAT's ``modId``), holding
        the datafiles that are (``restorable``, ordered as above: a partial restore's),
        SessionRefusedError when the session is refused, DeadlineExceededError when reading
        outlasts the adapter's deadline.
        """

    @abstractmethod
    async def dataset_archival(self, session_id: str, dataset_id: int) -> ArchivalRecords:
        """The dataset and every datafile of it, with the "Archival state" and "Archival
        failure" the functional account wrote (``CatalogueDatafile.archival``; one anyone
        else wrote is left out, as if none); NotFoundError naming it otherwise."""

    @abstractmethod
    async def investigation_archival(
        self, session_id: str, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        """The investigation, its datasets (by id) and every datafile of theirs, as
        ``dataset_archival``; NotFoundError naming it otherwise."""

    @abstractmethod
    async def find_investigations(
        self,
        session_id: str,
        name: str,
        visit_id: str | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CatalogueInvestigation]:
        """The investigations of the facility (``icat.facility``) of this name (and visit
        id, when given) the user may read, by id, from the first above ``after``, at most
        ``limit`` of them; with the "Archival state" of those of their datasets that the
        functional account wrote (``dataset_states``); none is no error."""

    @abstractmethod
    async def find_datasets(
        self,
        session_id: str,
        investigation: str,
        visit_id: str,
        name: str | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CatalogueDataset]:
        """The datasets (of this name, when given) of the facility's investigation of this
        name and visit id the user may read, by id, from the first above ``after``, at most
        ``limit``; with their "Archival state" when the functional account wrote it
        (``archival``)."""
