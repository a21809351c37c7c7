"""An in-memory ``Selections``: investigations, datasets and datafiles with their names,
readers, "Archival state" and "Archival failure", read with ICAT's rules (unreadable = not
found; only FINISHED restores; a dataset's own state is its files' aggregated, as the
icat-writer keeps it)."""

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
from datastore_common.domain.plan import RestoreItem
from datastore_common.domain.states import FINISHED, aggregate_dataset_state
from datastore_common.errors import AuthenticationError, NotArchivedError, NotFoundError
from datastore_common.messages import DatafileKey
from datastore_common.ports import Selections, describe_ids


@dataclass
class FakeInvestigation:
    investigation_id: int
    name: str
    visit_id: str = "1"
    readers: Collection[str] | None = None  # user names allowed to read it; None = anyone
    title: str = "Title"


@dataclass
class FakeDataset:
    dataset_id: int
    investigation_id: int
    name: str


@dataclass
class FakeDatafile:
    datafile_id: int
    dataset_id: int
    location: str | None
    state: str | None = FINISHED
    checksum: str | None = None
    filesize: int | None = None
    name: str = ""
    failure: str | None = None  # "Archival failure"


@dataclass
class FakeSelections(Selections):
    """``user_of`` turns a session id into a user name (e.g. ``FakeSessions.sessions.get``);
    an investigation's ``readers`` are who may read it and everything in it."""

    user_of: Callable[[str], str | None] = lambda session_id: session_id or None
    investigations: dict[int, FakeInvestigation] = field(default_factory=dict)
    datasets: dict[int, FakeDataset] = field(default_factory=dict)
    datafiles: dict[int, FakeDatafile] = field(default_factory=dict)
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
        visit_id: str = "1",
        name: str | None = None,
    ) -> list[int]:
        """A dataset whose datafiles (ids from ``first_datafile_id``) sit at ``locations``, in
        the investigation of that id (made with ``investigation``, ``visit_id`` and
        ``readers`` when new: its name is ``INV<id>`` unless given); the dataset is named
        ``name`` (``dataset_<id>`` unless given), each datafile after its location."""
        self.investigations.setdefault(
            investigation_id,
            FakeInvestigation(
                investigation_id, investigation or f"INV{investigation_id}", visit_id, readers
            ),
        )
        self.datasets[dataset_id] = FakeDataset(
            dataset_id, investigation_id, name or f"dataset_{dataset_id}"
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
            raise AuthenticationError("session expired or unknown")
        return user

    def _readable(self, user: str, investigation_id: int | None) -> bool:
        if investigation_id not in self.investigations:
            return False
        investigation = self.investigations[investigation_id]
        return investigation.readers is None or user in investigation.readers

    def _investigation_of(self, dataset_id: int) -> int | None:
        dataset = self.datasets.get(dataset_id)
        return None if dataset is None else dataset.investigation_id

    def key_of(self, datafile: FakeDatafile) -> DatafileKey:
        """The datafile's names in the catalogue."""
        dataset = self.datasets[datafile.dataset_id]
        investigation = self.investigations[dataset.investigation_id]
        return DatafileKey(
            investigation=investigation.name,
            visit_id=investigation.visit_id,
            dataset=dataset.name,
            datafile=datafile.name,
        )

    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
    ) -> list[RestoreItem]:
        user = self._user(session_id)
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
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )
        chosen_datasets = {
            d.dataset_id for d in self.datasets.values() if d.investigation_id in investigation_ids
        }
        chosen_datasets |= set(dataset_ids)
        chosen = {
            f.datafile_id: f
            for f in self.datafiles.values()
            if f.dataset_id in chosen_datasets or f.datafile_id in set(datafile_ids)
        }
        refused: dict[int, str | None] = {
            f.datafile_id: f.state for f in chosen.values() if f.state != FINISHED or not f.location
        }
        if refused:
            raise NotArchivedError(refused)
        items = [
            RestoreItem(
                f.datafile_id,
                f.dataset_id,
                f.location or "",
                f.checksum,
                f.filesize,
                self.key_of(f),
            )
            for f in chosen.values()
        ]
        return sorted(items, key=lambda item: (item.dataset_id, item.location))

    # -- archival and look-ups -----------------------------------------------------------
    def _files_of(self, dataset_ids: Collection[int]) -> tuple[CatalogueDatafile, ...]:
        return tuple(
            CatalogueDatafile(
                f.datafile_id,
                f.dataset_id,
                f.name,
                f.location,
                f.filesize,
                f.checksum,
                {
                    name: value
                    for name, value in ((ARCHIVAL_STATE, f.state), (ARCHIVAL_FAILURE, f.failure))
                    if value is not None
                },
            )
            for f in sorted(self.datafiles.values(), key=lambda f: f.datafile_id)
            if f.dataset_id in dataset_ids
        )

    def _dataset_record(self, dataset: FakeDataset) -> CatalogueDataset:
        states = [
            f.state
            for f in self.datafiles.values()
            if f.dataset_id == dataset.dataset_id and f.state is not None
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
        self, session_id: str, name: str, visit_id: str | None = None
    ) -> list[CatalogueInvestigation]:
        user = self._user(session_id)
        return [
            self._investigation_record(i)
            for i in sorted(self.investigations.values(), key=lambda i: i.investigation_id)
            if i.name == name
            and (visit_id is None or i.visit_id == visit_id)
            and self._readable(user, i.investigation_id)
        ]

    async def find_datasets(
        self, session_id: str, investigation: str, visit_id: str, name: str | None = None
    ) -> list[CatalogueDataset]:
        user = self._user(session_id)
        found = [
            self._dataset_record(d)
            for i in self.investigations.values()
            if i.name == investigation
            and i.visit_id == visit_id
            and self._readable(user, i.investigation_id)
            for d in self._datasets_of(i)
            if name is None or d.name == name
        ]
        return sorted(found, key=lambda d: d.dataset_id)
