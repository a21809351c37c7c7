"""An in-memory ``Selections``: investigations, datasets and datafiles with their readers and
"Archival state", resolved with ICAT's rules (unreadable = not found; only FINISHED restores),
as ``IcatSelections`` answers (tests/contract holds the two to the same cases)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from datastore_common.domain.plan import RestoreItem
from datastore_common.domain.states import FINISHED
from datastore_common.errors import AuthenticationError, NotArchivedError, NotFoundError
from datastore_common.ports import Selections, describe_ids


@dataclass
class FakeDatafile:
    datafile_id: int
    dataset_id: int
    location: str | None
    state: str | None = FINISHED
    checksum: str | None = None
    filesize: int | None = None


@dataclass
class FakeSelections(Selections):
    """``readers`` maps investigation id -> user names allowed to read it (``None`` = anyone);
    ``user_of`` turns a session id into a user name (e.g. ``FakeSessions.sessions.get``)."""

    user_of: Callable[[str], str | None] = lambda session_id: session_id or None
    investigations: dict[int, Collection[str] | None] = field(default_factory=dict)
    datasets: dict[int, int] = field(default_factory=dict)  # dataset id -> investigation id
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
    ) -> list[int]:
        """A dataset whose datafiles (ids from ``first_datafile_id``) sit at ``locations``."""
        self.investigations.setdefault(investigation_id, readers)
        self.datasets[dataset_id] = investigation_id
        ids = []
        for offset, location in enumerate(locations):
            datafile_id = first_datafile_id + offset
            self.datafiles[datafile_id] = FakeDatafile(
                datafile_id, dataset_id, location, state, f"adler32:{datafile_id:08x}", 1024
            )
            ids.append(datafile_id)
        return ids

    def _readable(self, user: str, investigation_id: int | None) -> bool:
        if investigation_id not in self.investigations:
            return False
        readers = self.investigations[investigation_id]
        return readers is None or user in readers

    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
    ) -> list[RestoreItem]:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        user = self.user_of(session_id)
        if user is None:
            raise AuthenticationError("session expired or unknown")
        # Each id once, as ICAT is asked about it (and names it when refused).
        investigation_ids, dataset_ids, datafile_ids = (
            sorted(set(ids)) for ids in (investigation_ids, dataset_ids, datafile_ids)
        )
        missing = {
            "Investigation": [i for i in investigation_ids if not self._readable(user, i)],
            "Dataset": [d for d in dataset_ids if not self._readable(user, self.datasets.get(d))],
            "Datafile": [
                f
                for f in datafile_ids
                if f not in self.datafiles
                or not self._readable(user, self.datasets.get(self.datafiles[f].dataset_id))
            ],
        }
        if any(missing.values()):
            raise NotFoundError(
                "not found, or not readable with your ICAT session: " + describe_ids(missing)
            )
        chosen_datasets = {d for d, i in self.datasets.items() if i in set(investigation_ids)}
        chosen_datasets |= set(dataset_ids)
        chosen = {
            f.datafile_id: f
            for f in self.datafiles.values()
            if f.dataset_id in chosen_datasets or f.datafile_id in set(datafile_ids)
        }
        refused: dict[int, str | None] = {}
        for f in chosen.values():
            if f.state != FINISHED:
                refused[f.datafile_id] = f.state
            elif not f.location:
                refused[f.datafile_id] = f"{f.state}, but no location"
        if refused:
            raise NotArchivedError(refused)
        items = [
            RestoreItem(f.datafile_id, f.dataset_id, f.location or "", f.checksum, f.filesize)
            for f in chosen.values()
        ]
        return sorted(items, key=lambda item: (item.dataset_id, item.location))
