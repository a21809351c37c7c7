"""An in-memory ``Selections``: investigations, datasets and datafiles with their names,
readers, "Archival state" and "Archival failure", read with ICAT's rules (unreadable = not
found; only FINISHED restores, and only a state the functional account wrote, which is also
the only one status and look-ups count; a datafile's place is what its entities say, whatever
its stored location; a dataset's own state is its files' aggregated, as the icat-writer keeps
it, unless set by hand; look-ups see only the facility's investigations, by id, paged).
As ``IcatSelections`` answers: tests/contract holds the two to the same cases."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_STATE,
    ArchivalRecords,
    CatalogueDatafile,
    CatalogueDataset,
    CatalogueInvestigation,
)
from datastore_common.domain.paths import DatafilePlace
from datastore_common.domain.plan import RestoreItem
from datastore_common.domain.states import FINISHED, aggregate_dataset_state
from datastore_common.errors import (
    NotArchivedError,
    NotFoundError,
    SessionRefusedError,
    TooLargeError,
)
from datastore_common.ports import Selections, describe_ids

#: The functional account as ICAT names it with the default settings (``icat.functional_user``).
FUNCTIONAL_USER = "simple/datastore"


def place_of(location: str) -> DatafilePlace:
    """The place a well-formed location names
    (``{instrument}/{cycle}/{name}-{visitId}/{type}/{dataset}/{datafile}``); ValueError for
    any other."""
    instrument, cycle, folder, dataset_type, dataset, datafile = location.split("/")
    investigation, visit_id = folder.rsplit("-", 1)
    return DatafilePlace(
        (instrument,), (cycle,), investigation, visit_id, dataset_type, dataset, datafile
    )


def _place_or_none(location: str) -> DatafilePlace | None:
    try:
        return place_of(location)
    except ValueError:
        return None


@dataclass
class FakeInvestigation:
    investigation_id: int
    name: str
    visit_id: str = "1"
    readers: Collection[str] | None = None  # user names allowed to read it; None = anyone
    title: str = "Title"
    instruments: tuple[str, ...] = ("instrument",)
    facility_cycles: tuple[str, ...] = ("20XX",)
    facility: str = "facility"


@dataclass
class FakeDataset:
    """``state``: its own "Archival state" when set by hand (written by ``state_by``); None
    keeps it its datafiles' aggregated, as the icat-writer does."""

    dataset_id: int
    investigation_id: int
    name: str
    dataset_type: str = "scan"
    state: str | None = None
    state_by: str = FUNCTIONAL_USER


@dataclass
class FakeDatafile:
    """``location`` is what ICAT stores; the datafile's place is what its investigation,
    dataset and ``name`` say (change either to forge one); ``state_by`` is who wrote its
    "Archival state" and "Archival failure" (ICAT's ``modId``)."""

    datafile_id: int
    dataset_id: int
    location: str | None
    state: str | None = FINISHED
    checksum: str | None = None
    filesize: int | None = None
    name: str = ""
    failure: str | None = None  # "Archival failure"
    state_by: str = FUNCTIONAL_USER


@dataclass
class FakeSelections(Selections):
    """``user_of`` turns a session id into a user name (e.g. ``FakeSessions.sessions.get``);
    an investigation's ``readers`` are who may read it and everything in it;
    ``archival_writer`` is the only writer whose "Archival state" a restore, a status or a
    look-up counts, with ``trusted_writers`` (``icat.trusted_writers``); ``facility`` the
    only facility look-ups see."""

    user_of: Callable[[str], str | None] = lambda session_id: session_id or None
    investigations: dict[int, FakeInvestigation] = field(default_factory=dict)
    datasets: dict[int, FakeDataset] = field(default_factory=dict)
    datafiles: dict[int, FakeDatafile] = field(default_factory=dict)
    archival_writer: str = FUNCTIONAL_USER
    trusted_writers: tuple[str, ...] = ()
    facility: str = "facility"
    calls: int = 0
    fail_with: Exception | None = None

    def add_dataset(
        self,
        investigation_id: int,
        dataset_id: int,
        locations: Sequence[str],
        *,
        first_datafile_id: int,
        state: str | None = FINISHED,
        readers: Collection[str] | None = None,
        investigation: str | None = None,
        visit_id: str | None = None,
        name: str | None = None,
    ) -> list[int]:
        """A dataset whose datafiles (ids from ``first_datafile_id``) sit at ``locations``, in
        the investigation of that id (made with ``investigation``, ``visit_id`` and
        ``readers`` when new). Names not given are the first location's when it is
        well-formed (``{instrument}/{cycle}/{name}-{visitId}/{type}/{dataset}/{datafile}``,
        so Datastore would have archived it there), else ``INV<id>``, visit ``1`` and
        ``dataset_<id>``; each datafile is named after its location."""
        placed = _place_or_none(locations[0]) if locations else None
        made = FakeInvestigation(
            investigation_id,
            investigation or (placed.investigation if placed else f"INV{investigation_id}"),
            visit_id or (placed.visit_id if placed else "1"),
            readers,
        )
        if placed is not None:
            made.instruments, made.facility_cycles = placed.instruments, placed.facility_cycles
        self.investigations.setdefault(investigation_id, made)
        self.datasets[dataset_id] = FakeDataset(
            dataset_id,
            investigation_id,
            name or (placed.dataset if placed else f"dataset_{dataset_id}"),
            placed.dataset_type if placed else "scan",
        )
        ids = []
        for offset, location in enumerate(locations):
            datafile_id = first_datafile_id + offset
            self.datafiles[datafile_id] = FakeDatafile(
                datafile_id,
                dataset_id,
                location,
                state,
                f"adler32:{datafile_id:08x}",
                1024,
                location.rsplit("/", 1)[-1],
            )
            ids.append(datafile_id)
        return ids

    def _user(self, session_id: str) -> str:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        user = self.user_of(session_id)
        if user is None:
            raise SessionRefusedError("session expired or unknown")
        return user

    def _readable(self, user: str, investigation_id: int | None) -> bool:
        if investigation_id not in self.investigations:
            return False
        investigation = self.investigations[investigation_id]
        return investigation.readers is None or user in investigation.readers

    def _investigation_of(self, dataset_id: int) -> int | None:
        dataset = self.datasets.get(dataset_id)
        return None if dataset is None else dataset.investigation_id

    def place(self, datafile: FakeDatafile) -> DatafilePlace:
        """Where the datafile's entities put it (its ``RestoreItem.key`` is read from this)."""
        dataset = self.datasets[datafile.dataset_id]
        investigation = self.investigations[dataset.investigation_id]
        return DatafilePlace(
            instruments=investigation.instruments,
            facility_cycles=investigation.facility_cycles,
            investigation=investigation.name,
            visit_id=investigation.visit_id,
            dataset_type=dataset.dataset_type,
            dataset=dataset.name,
            datafile=datafile.name,
        )

    def _trusts(self, writer: str) -> bool:
        """Whether archival parameters this writer (ICAT's ``modId``) wrote count."""
        return writer == self.archival_writer or writer in self.trusted_writers

    def _state(self, datafile: FakeDatafile) -> str | None:
        """The "Archival state" as a restore counts it: FINISHED only if ours."""
        if datafile.state is None or self._trusts(datafile.state_by):
            return datafile.state
        return f"{datafile.state} written by {datafile.state_by!r}, not by Datastore: not counted"

    def _ours(self, datafile: FakeDatafile) -> dict[str, str]:
        """Its "Archival state" and "Archival failure" if the functional account wrote them
        (status and look-ups count nothing else)."""
        if not self._trusts(datafile.state_by):
            return {}
        return {
            name: value
            for name, value in (
                (ARCHIVAL_STATE, datafile.state),
                (ARCHIVAL_FAILURE, datafile.failure),
            )
            if value is not None
        }

    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
        *,
        max_datafiles: int | None = None,
    ) -> list[RestoreItem]:
        user = self._user(session_id)
        # Each id once, as ICAT is asked about it (and names it when refused).
        investigation_ids, dataset_ids, datafile_ids = (
            sorted(set(ids)) for ids in (investigation_ids, dataset_ids, datafile_ids)
        )
        missing = {
            "Investigation": [i for i in investigation_ids if not self._readable(user, i)],
            "Dataset": [
                d for d in dataset_ids if not self._readable(user, self._investigation_of(d))
            ],
            "Datafile": [
                f
                for f in datafile_ids
                if f not in self.datafiles
                or not self._readable(user, self._investigation_of(self.datafiles[f].dataset_id))
            ],
        }
        chosen_datasets = {
            d.dataset_id for d in self.datasets.values() if d.investigation_id in investigation_ids
        }
        chosen_datasets |= set(dataset_ids)
        chosen = {
            f.datafile_id: f
            for f in self.datafiles.values()
            if (f.dataset_id in chosen_datasets or f.datafile_id in set(datafile_ids))
            and self._readable(user, self._investigation_of(f.dataset_id))
        }
        # As ICAT is read: too many found is refused before what is missing is known.
        if max_datafiles is not None and len(chosen) > max_datafiles:
            raise TooLargeError(
                f"the selection holds more than {max_datafiles} datafiles; the limit is "
                f"{max_datafiles}"
            )
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )
        refused: dict[int, str | None] = {}
        items = []
        for f in chosen.values():
            state = self._state(f)
            if state != FINISHED:
                refused[f.datafile_id] = state
            elif not f.location:
                refused[f.datafile_id] = f"{state}, but no location"
            else:
                items.append(
                    RestoreItem(
                        f.datafile_id,
                        f.dataset_id,
                        f.location,
                        f.checksum,
                        f.filesize,
                        place=self.place(f),
                    )
                )
        if refused:  # with what could be restored, for a partial restore
            raise NotArchivedError(
                refused, sorted(items, key=lambda item: (item.dataset_id, item.location))
            )
        return sorted(items, key=lambda item: (item.dataset_id, item.location))

    # -- archival and look-ups -----------------------------------------------------------
    def _files_of(self, dataset_ids: Collection[int]) -> tuple[CatalogueDatafile, ...]:
        """Every datafile of these datasets, by id, with its archival parameters: neither
        size nor checksum, which ``IcatSelections`` does not read for an archival."""
        return tuple(
            CatalogueDatafile(
                f.datafile_id,
                f.dataset_id,
                f.name,
                f.location,
                None,
                None,
                self._ours(f),
            )
            for f in sorted(self.datafiles.values(), key=lambda f: f.datafile_id)
            if f.dataset_id in dataset_ids
        )

    def _dataset_record(self, dataset: FakeDataset) -> CatalogueDataset:
        """As a look-up shows it: with its "Archival state" if the functional account
        wrote it (by hand, or as its files' aggregated: those it wrote)."""
        if dataset.state is not None:
            ours = self._trusts(dataset.state_by)
            archival = {ARCHIVAL_STATE: dataset.state} if ours else {}
        else:
            states = [
                self._ours(f)[ARCHIVAL_STATE]
                for f in self.datafiles.values()
                if f.dataset_id == dataset.dataset_id and ARCHIVAL_STATE in self._ours(f)
            ]
            archival = {ARCHIVAL_STATE: aggregate_dataset_state(states)} if states else {}
        return CatalogueDataset(
            dataset.dataset_id, dataset.investigation_id, dataset.name, archival
        )

    def _investigation_record(self, investigation: FakeInvestigation) -> CatalogueInvestigation:
        states = tuple(
            record.archival[ARCHIVAL_STATE]
            for record in map(self._dataset_record, self._datasets_of(investigation))
            if ARCHIVAL_STATE in record.archival
        )
        return CatalogueInvestigation(
            investigation.investigation_id,
            investigation.name,
            investigation.visit_id,
            investigation.title,
            states,
        )

    def _datasets_of(self, investigation: FakeInvestigation) -> list[FakeDataset]:
        return sorted(
            (
                d
                for d in self.datasets.values()
                if d.investigation_id == investigation.investigation_id
            ),
            key=lambda d: d.dataset_id,
        )

    async def dataset_archival(self, session_id: str, dataset_id: int) -> ArchivalRecords:
        user = self._user(session_id)
        if not self._readable(user, self._investigation_of(dataset_id)):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: "
                + describe_ids({"Dataset": [dataset_id]})
            )
        dataset = self.datasets[dataset_id]
        return ArchivalRecords(
            (CatalogueDataset(dataset_id, dataset.investigation_id, dataset.name),),
            self._files_of({dataset_id}),
        )

    async def investigation_archival(
        self, session_id: str, investigation_id: int
    ) -> tuple[CatalogueInvestigation, ArchivalRecords]:
        user = self._user(session_id)
        if not self._readable(user, investigation_id):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: "
                + describe_ids({"Investigation": [investigation_id]})
            )
        investigation = self.investigations[investigation_id]
        datasets = self._datasets_of(investigation)
        return (
            CatalogueInvestigation(
                investigation_id, investigation.name, investigation.visit_id, investigation.title
            ),
            ArchivalRecords(
                tuple(CatalogueDataset(d.dataset_id, investigation_id, d.name) for d in datasets),
                self._files_of({d.dataset_id for d in datasets}),
            ),
        )

    async def find_investigations(
        self,
        session_id: str,
        name: str,
        visit_id: str | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[CatalogueInvestigation]:
        user = self._user(session_id)
        found = [
            self._investigation_record(i)
            for i in sorted(self.investigations.values(), key=lambda i: i.investigation_id)
            if i.name == name
            and i.facility == self.facility
            and (visit_id is None or i.visit_id == visit_id)
            and (after is None or i.investigation_id > after)
            and self._readable(user, i.investigation_id)
        ]
        return found if limit is None else found[:limit]

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
        user = self._user(session_id)
        found = sorted(
            (
                self._dataset_record(d)
                for i in self.investigations.values()
                if i.name == investigation
                and i.visit_id == visit_id
                and i.facility == self.facility
                and self._readable(user, i.investigation_id)
                for d in self._datasets_of(i)
                if (name is None or d.name == name) and (after is None or d.dataset_id > after)
            ),
            key=lambda d: d.dataset_id,
        )
        return found if limit is None else found[:limit]
