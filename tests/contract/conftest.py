"""Contract tests: the same cases on each fake of ``datastore_common.testing`` and on the real
adapter it stands in for, so what the unit tests learn from a fake holds for the real thing.

Every fixture here is parametrized: ``fake`` is the fake alone (no I/O), ``icat`` / ``fts3`` is
the real adapter on its emulator (marked ``integration``). The emulators speak the real ICAT
and FTS3 wire protocols, so the real adapter on them is the reference: where the two disagree,
the fake is wrong (unless the adapter clearly is; such a case is an ``xfail(strict=True)``
saying why). ``-m "not integration"`` runs the fakes' half alone, in about a second.

A case arranges the world it starts from through a small harness per port, one implementation
per side: data in ICAT (the icat-writer's functional account on the real side, the fake's own
tables on the other), a job that FTS runs to its end (the emulator really copies with XRootD;
the fake is told the outcome FTS would reach).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import icat
import pytest
from pydantic import SecretStr

from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.domain.states import FAILED, FINISHED, TERMINAL, aggregate_dataset_state
from datastore_common.messages import PlannedJob, PlannedTransfer
from datastore_common.ports import (
    ArchivalEntity,
    Catalogue,
    JobProgress,
    NewDatafile,
    Selections,
    TransferService,
)
from datastore_common.settings import IcatSettings
from datastore_common.testing.fake_catalogue import FakeCatalogue
from datastore_common.testing.fake_selections import (
    FUNCTIONAL_USER,
    FakeDatafile,
    FakeDataset,
    FakeInvestigation,
    FakeSelections,
)
from datastore_common.testing.fakes import FakeSessions, FakeTransferService
from tests.integration.icat_adapter.conftest import seeded_icat  # noqa: F401  (fixture)
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator

#: The users of the contract cases, as ICAT names them, with their passwords
#: (deploy/local/icat/emulator.yaml): root reads everything, alice what she is a user of.
ROOT = "simple/root"
ALICE = "db/alice"
USERS = {ROOT: "pw", ALICE: "alice-pw"}


def sides(real: str) -> list[object]:
    """The fake, and the real adapter (``real`` names it in test ids) marked integration."""
    return [pytest.param("fake"), pytest.param(real, marks=pytest.mark.integration)]


# ---------------------------------------------------------------------------------- Catalogue


@pytest.fixture(params=sides("icat"))
async def catalogue(request: pytest.FixtureRequest) -> AsyncIterator[Catalogue]:
    """A ``FakeCatalogue`` with the seed's reference entities, or an ``IcatCatalogue`` on the
    shared, seeded ICAT emulator (where other cases' entities exist too: names are unique)."""
    if request.param == "fake":
        yield FakeCatalogue()
        return
    seeded: IcatEmulator = request.getfixturevalue("seeded_icat")
    real = IcatCatalogue(IcatSettings(url=seeded.url), pool=IcatClientPool(seeded.url, size=2))  # type: ignore[arg-type]
    try:
        yield real
    finally:
        await real.close()


# --------------------------------------------------------------------------------- Selections


@dataclass(frozen=True)
class Archived:
    """One archived investigation ``name``-``visit_id``: dataset id -> {datafile id: location},
    in creation order, each dataset's name, and each datafile's (size, checksum)."""

    investigation_id: int
    name: str
    datasets: dict[int, dict[int, str]]
    dataset_names: dict[int, str]
    bytes_of: dict[int, tuple[int, str]]
    visit_id: str = "1"

    @property
    def dataset_ids(self) -> list[int]:
        return list(self.datasets)

    def files(self, *dataset_ids: int) -> dict[int, str]:
        """{datafile id: location} of these datasets (of all, without any)."""
        chosen = dataset_ids or tuple(self.datasets)
        return {k: v for d in chosen for k, v in self.datasets[d].items()}


def locations(name: str, dataset: str, files: int) -> list[str]:
    """Where the icat-writer records the datafiles of one dataset of the seed."""
    return [f"instrument/20XX/{name}-1/scan/{dataset}/file_{i:04d}.nxs" for i in range(files)]


def dataset_state(file_states: Iterable[str | None]) -> str | None:
    """A dataset's "Archival state" as the icat-writer keeps it: its files' aggregated (None:
    no file has one)."""
    present = [s for s in file_states if s is not None]
    return aggregate_dataset_state(present) if present else None


class SelectionsWorld(ABC):
    """A ``Selections`` and the ICAT behind it: users, and archived investigations. Archival
    states are the functional account's (so a restore counts them) unless written ``by`` a
    user by hand; a dataset's own state follows its files' as the icat-writer keeps it."""

    selections: Selections

    @abstractmethod
    async def login(self, user: str) -> str:
        """A session id of ``user`` (``ROOT`` or ``ALICE``)."""

    @abstractmethod
    async def archive(
        self, *, datasets: int = 2, files: int = 3, state: str = FINISHED, located: bool = True
    ) -> Archived:
        """An investigation as the icat-writer and status-poller leave it after an archive:
        every datafile in ``state``, at its location (an empty one unless ``located``)."""

    @abstractmethod
    async def set_states(
        self,
        states: Mapping[int, str | None],
        *,
        failures: Mapping[int, str] | None = None,
        by: str | None = None,
    ) -> None:
        """Set (None: remove) the "Archival state" of these datafiles, and the "Archival
        failure" of those in ``failures``: as the functional account, or as user ``by``.
        Their datasets' states follow the states the functional account wrote (as the
        icat-writer keeps them; a state someone else wrote replaced its own)."""

    @abstractmethod
    async def set_dataset_state(self, dataset_id: int, state: str, *, by: str) -> None:
        """Write the dataset's own "Archival state" by hand, as user ``by``."""

    @abstractmethod
    async def grant(self, investigation_id: int, user: str) -> None:
        """Make ``user`` an InvestigationUser of the investigation (so they may read it)."""

    @abstractmethod
    def trust(self, *writers: str) -> None:
        """Count the archival parameters these accounts write too (``icat.trusted_writers``:
        the original Datastore API's account, after taking over from it)."""

    async def close(self) -> None:
        return None


@dataclass
class FakeSelectionsWorld(SelectionsWorld):
    sessions: FakeSessions = field(default_factory=lambda: FakeSessions(USERS))
    selections: FakeSelections = field(init=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(101))

    def __post_init__(self) -> None:
        self.selections = FakeSelections(
            user_of=self.sessions.sessions.get, archival_writer=FUNCTIONAL_USER
        )

    async def login(self, user: str) -> str:
        auth, name = user.split("/")
        return await self.sessions.login(auth, {"username": name, "password": USERS[user]})

    async def archive(
        self, *, datasets: int = 2, files: int = 3, state: str = FINISHED, located: bool = True
    ) -> Archived:
        name = f"SEL-{uuid.uuid4().hex[:10]}"
        investigation_id = next(self._ids)
        self.selections.investigations[investigation_id] = FakeInvestigation(
            investigation_id,
            name,
            "1",
            readers={ROOT},  # root reads everything
            instruments=("instrument",),
            facility_cycles=("20XX",),
        )
        result: dict[int, dict[int, str]] = {}
        names: dict[int, str] = {}
        bytes_of: dict[int, tuple[int, str]] = {}
        for d in range(datasets):
            dataset_id = next(self._ids)
            names[dataset_id] = f"scan_{d:04d}"
            self.selections.datasets[dataset_id] = FakeDataset(
                dataset_id, investigation_id, names[dataset_id], "scan"
            )
            result[dataset_id] = {}
            for i, location in enumerate(locations(name, names[dataset_id], files)):
                datafile_id = next(self._ids)
                size, checksum = 1000 + i, f"adler32:{i:08x}"
                where = location if located else ""
                self.selections.datafiles[datafile_id] = FakeDatafile(
                    datafile_id,
                    dataset_id,
                    where,
                    state,
                    checksum,
                    size,
                    name=location.rsplit("/", 1)[-1],
                    state_by=FUNCTIONAL_USER,
                )
                result[dataset_id][datafile_id] = where
                bytes_of[datafile_id] = (size, checksum)
        return Archived(investigation_id, name, result, names, bytes_of)

    async def set_states(
        self,
        states: Mapping[int, str | None],
        *,
        failures: Mapping[int, str] | None = None,
        by: str | None = None,
    ) -> None:
        for datafile_id, state in states.items():
            datafile = self.selections.datafiles[datafile_id]
            datafile.state, datafile.state_by = state, by or FUNCTIONAL_USER
            if failures and datafile_id in failures:
                datafile.failure = failures[datafile_id]

    async def set_dataset_state(self, dataset_id: int, state: str, *, by: str) -> None:
        dataset = self.selections.datasets[dataset_id]
        dataset.state, dataset.state_by = state, by

    async def grant(self, investigation_id: int, user: str) -> None:
        readers = self.selections.investigations[investigation_id].readers
        assert isinstance(readers, set)
        readers.add(user)

    def trust(self, *writers: str) -> None:
        self.selections.trusted_writers = writers


class IcatSelectionsWorld(SelectionsWorld):
    """``IcatSelections`` on the emulator; data written by an ``IcatCatalogue`` as the
    functional account (whose writes alone a restore counts), by hand as a user's own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = IcatSettings(url=url)
        self.pool = IcatClientPool(url, size=2)
        self.selections = IcatSelections(self.pool, archival_writer=self.settings.functional_user)
        self.sessions = IcatSessions(self.pool)
        self.catalogue = IcatCatalogue(self.settings, pool=IcatClientPool(url, size=2))
        self._logged_in: list[str] = []
        # What the harness wrote, to keep each dataset's state its files' (as the writer).
        self._states: dict[int, str | None] = {}
        self._dataset_of: dict[int, int] = {}

    async def login(self, user: str) -> str:
        auth, name = user.split("/")
        session_id = await self.sessions.login(auth, {"username": name, "password": USERS[user]})
        self._logged_in.append(session_id)
        return session_id

    async def archive(
        self, *, datasets: int = 2, files: int = 3, state: str = FINISHED, located: bool = True
    ) -> Archived:
        spec = seed_investigation(f"SEL-{uuid.uuid4().hex[:10]}", datasets=datasets, files=files)
        investigation_id = await self.catalogue.ensure_investigation(spec)
        found = await self.catalogue.ensure_datasets(investigation_id, spec.datasets)
        result: dict[int, dict[int, str]] = {}
        names: dict[int, str] = {}
        bytes_of: dict[int, tuple[int, str]] = {}
        for dataset in spec.datasets:
            where = locations(spec.name, dataset.name, files)
            new = [
                NewDatafile(df, where[i] if located else "", 1000 + i, f"adler32:{i:08x}")
                for i, df in enumerate(dataset.datafiles)
            ]
            dataset_id = found[dataset.name].dataset_id
            names[dataset_id] = dataset.name
            made = await self.catalogue.ensure_datafiles(dataset_id, new)
            result[dataset_id] = {m.datafile_id: m.location or "" for m in made.values()}
            bytes_of.update(
                {m.datafile_id: (m.file_size or 0, m.checksum or "") for m in made.values()}
            )
            await self.catalogue.set_archival(
                "Datafile",
                {i: {ARCHIVAL_STATE: state, ARCHIVAL_IDS: "job"} for i in result[dataset_id]},
            )
            self._states.update(dict.fromkeys(result[dataset_id], state))
            self._dataset_of.update(dict.fromkeys(result[dataset_id], dataset_id))
            await self.catalogue.set_archival(
                "Dataset", {dataset_id: {ARCHIVAL_STATE: dataset_state([state] * files)}}
            )
        return Archived(investigation_id, spec.name, result, names, bytes_of)

    async def set_states(
        self,
        states: Mapping[int, str | None],
        *,
        failures: Mapping[int, str] | None = None,
        by: str | None = None,
    ) -> None:
        values = {
            i: {ARCHIVAL_STATE: state}
            | ({ARCHIVAL_FAILURE: failures[i]} if failures and i in failures else {})
            for i, state in states.items()
        }
        if by is None:
            await self.catalogue.set_archival("Datafile", values)
        else:
            await self._by_hand(by, "Datafile", values)
        # What the icat-writer knows of: its own states (one written over it is not its).
        self._states.update(states if by is None else dict.fromkeys(states))
        # The icat-writer's: each dataset touched, its files' state aggregated.
        for dataset_id in sorted({self._dataset_of[i] for i in states}):
            files = [s for i, s in self._states.items() if self._dataset_of[i] == dataset_id]
            await self.catalogue.set_archival(
                "Dataset", {dataset_id: {ARCHIVAL_STATE: dataset_state(files)}}
            )

    async def set_dataset_state(self, dataset_id: int, state: str, *, by: str) -> None:
        await self._by_hand(by, "Dataset", {dataset_id: {ARCHIVAL_STATE: state}})

    async def _by_hand(
        self, by: str, entity: ArchivalEntity, values: Mapping[int, Mapping[str, str | None]]
    ) -> None:
        """Archival parameters written as user ``by`` (ICAT's modId says so)."""
        auth, name = by.split("/")
        update = {"auth": auth, "username": name, "password": SecretStr(USERS[by])}
        by_hand = IcatCatalogue(
            self.settings.model_copy(update=update), pool=IcatClientPool(self.url, size=1)
        )
        try:
            await by_hand.set_archival(entity, values)
        finally:
            await by_hand.close()

    async def grant(self, investigation_id: int, user: str) -> None:
        await asyncio.to_thread(make_investigation_user, self.url, investigation_id, user)

    def trust(self, *writers: str) -> None:
        self.selections = IcatSelections(
            self.pool, archival_writer=self.settings.functional_user, trusted_writers=writers
        )

    async def close(self) -> None:
        for session_id in self._logged_in:
            await self.sessions.logout(session_id)
        await self.catalogue.close()
        await self.pool.close()


def make_investigation_user(url: str, investigation_id: int, user_name: str) -> None:
    root = icat.Client(url)
    root.login("simple", {"username": "root", "password": USERS[ROOT]})
    try:
        found = root.search(f"SELECT o FROM User o WHERE o.name = '{user_name}'")
        user = found[0] if found else root.new("User", name=user_name)
        if not found:
            user.create()
        investigation = root.get("Investigation", investigation_id)
        root.new("InvestigationUser", user=user, investigation=investigation, role="PI").create()
    finally:
        root.logout()


@pytest.fixture(params=sides("icat"))
async def selections_world(request: pytest.FixtureRequest) -> AsyncIterator[SelectionsWorld]:
    world: SelectionsWorld
    if request.param == "fake":
        world = FakeSelectionsWorld()
    else:
        seeded: IcatEmulator = request.getfixturevalue("seeded_icat")
        world = IcatSelectionsWorld(seeded.url)
    try:
        yield world
    finally:
        await world.close()


# ---------------------------------------------------------------------------- TransferService

#: How long a real job may take to reach its end (a missing source fails at once).
JOB_END_SECONDS = 60.0


class TransferWorld(ABC):
    """A ``TransferService`` and the FTS behind it: jobs that stay active (their files are
    copied, then wait for a tape copy that never comes) or that fail (missing sources)."""

    transfers: TransferService

    @abstractmethod
    async def job(
        self, files: int = 2, *, fails: bool = False, sid: str | None = None
    ) -> PlannedJob:
        """A planned archive job of ``files`` transfers, under a new sid unless given one."""

    @abstractmethod
    async def run_to_end(self, job_id: str) -> JobProgress:
        """Let FTS run a failing job to its end; the job as FTS then reports it."""

    async def close(self) -> None:
        return None

    async def planned(self, transfers: list[PlannedTransfer], sid: str | None) -> PlannedJob:
        sid = sid or job_sid(f"contract-{uuid.uuid4()}", 0)
        vo = await self.transfers.vo()
        return PlannedJob(job_id=fts_job_id(vo, sid), sid=sid, kind="archive", transfers=transfers)


def planned_transfers(
    source: str, destination: str, folder: str, files: int, *, first_id: int = 1000
) -> list[PlannedTransfer]:
    """``files`` transfers of ``folder``/file_NNNN.nxs from server ``source`` to the same
    path on ``destination``, for datafiles ``first_id``... of dataset 77."""
    return [
        PlannedTransfer(
            source=f"{source}//{folder.strip('/')}/file_{i:04d}.nxs",
            destination=f"{destination}//{folder.strip('/')}/file_{i:04d}.nxs",
            datafile_id=first_id + i,
            dataset_id=77,
        )
        for i in range(files)
    ]


@dataclass
class FakeTransferWorld(TransferWorld):
    transfers: FakeTransferService = field(default_factory=FakeTransferService)
    _failing: set[str] = field(default_factory=set)

    async def job(
        self, files: int = 2, *, fails: bool = False, sid: str | None = None
    ) -> PlannedJob:
        folder = f"/tests/contract-{uuid.uuid4().hex[:8]}"
        transfers = planned_transfers("root://idc:1094", "root://tape:1094", folder, files)
        job = await self.planned(transfers, sid)
        if fails:
            self._failing.add(job.job_id)
        return job

    async def run_to_end(self, job_id: str) -> JobProgress:
        assert job_id in self._failing, "only failing jobs end in the contract cases"
        reason = "SOURCE [2] Failed to stat: No such file or directory"
        files = len(self.transfers.states[job_id].files)
        self.transfers.set_state(job_id, FAILED, [(FAILED, reason)] * files)
        return self.transfers.states[job_id]


class Fts3TransferWorld(TransferWorld):
    """``Fts3TransferService`` on the FTS3 emulator, copying between the XRootD servers: an
    active job copies real files from the idc to the *udc*, a disk server, where the archive
    job then waits (ARCHIVING) for a tape copy that never comes; a failing job names sources
    that do not exist."""

    transfers: Fts3TransferService

    def __init__(
        self, transfers: Fts3TransferService, idc: str, udc: str, tape: str, folder: str
    ) -> None:
        self.transfers = transfers
        self.idc, self.udc, self.tape, self.folder = idc, udc, tape, folder
        self._made = itertools.count()

    async def job(
        self, files: int = 2, *, fails: bool = False, sid: str | None = None
    ) -> PlannedJob:
        folder = f"{self.folder}/job-{next(self._made)}"
        if fails:
            transfers = planned_transfers(self.idc, self.tape, folder, files)
        else:
            transfers = planned_transfers(self.idc, self.udc, folder, files)
            await asyncio.to_thread(write_sources, [t.source for t in transfers])
        return await self.planned(transfers, sid)

    async def run_to_end(self, job_id: str) -> JobProgress:
        deadline = asyncio.get_running_loop().time() + JOB_END_SECONDS
        while True:
            progress = (await self.transfers.status([job_id]))[job_id]
            assert progress is not None
            if progress.state in TERMINAL:
                return progress
            assert asyncio.get_running_loop().time() < deadline, f"{job_id} never ended: {progress}"
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.transfers.aclose()


def write_sources(urls: list[str], size: int = 4096) -> None:
    """Small files of random bytes at these XRootD URLs."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "source"
        for url in urls:
            local.write_bytes(os.urandom(size))
            subprocess.run(
                ["xrdcp", "--silent", "--force", "--path", str(local), url],
                check=True,
                capture_output=True,
                timeout=60,
            )


@pytest.fixture(params=sides("fts3"))
async def transfer_world(request: pytest.FixtureRequest) -> AsyncIterator[TransferWorld]:
    world: TransferWorld
    if request.param == "fake":
        world = FakeTransferWorld()
    else:
        from tests.integration.fts3_service.workflow import service_settings
        from tests.support.rabbitmq_fixtures import RABBITMQ_URL

        emulator = request.getfixturevalue("fts3_emulator")
        stack = request.getfixturevalue("xrootd_stack")
        folder = request.getfixturevalue("xrootd_test_path")
        service = Fts3TransferService.from_settings(service_settings(emulator, RABBITMQ_URL))
        world = Fts3TransferWorld(service, stack.idc, stack.udc, stack.tape, folder)
    try:
        yield world
    finally:
        await world.close()
