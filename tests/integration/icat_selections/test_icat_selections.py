"""IcatSelections against the ICAT emulator: a restore selection resolved with the user's own
session, so ICAT's authorization decides (root reads everything; db/alice only the
investigations she is an InvestigationUser of)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import icat
import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.domain.archival import ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.errors import AuthenticationError, NotArchivedError, NotFoundError
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation

pytestmark = pytest.mark.integration


@dataclass
class Archived:
    """One investigation: dataset ids -> {datafile id: location}, in dataset order."""

    investigation_id: int
    datasets: dict[int, dict[int, str]]

    @property
    def dataset_ids(self) -> list[int]:
        return list(self.datasets)

    def files(self, *dataset_ids: int) -> dict[int, str]:
        return {k: v for d in dataset_ids or self.dataset_ids for k, v in self.datasets[d].items()}


async def archive_in_icat(
    catalogue: IcatCatalogue, *, datasets: int = 2, files: int = 3, state: str = "FINISHED"
) -> Archived:
    """What the icat-writer and status-poller leave behind after an archive."""
    spec = seed_investigation(f"SEL-{uuid.uuid4().hex[:10]}", datasets=datasets, files=files)
    investigation_id = await catalogue.ensure_investigation(spec)
    found = await catalogue.ensure_datasets(investigation_id, spec.datasets)
    result: dict[int, dict[int, str]] = {}
    for dataset in spec.datasets:
        folder = f"instrument/20XX/{spec.name}-1/scan/{dataset.name}"
        new = [
            NewDatafile(df, f"{folder}/{df.name}", 1000 + i, f"adler32:{i:08x}")
            for i, df in enumerate(dataset.datafiles)
        ]
        dataset_id = found[dataset.name].dataset_id
        made = await catalogue.ensure_datafiles(dataset_id, new)
        result[dataset_id] = {m.datafile_id: m.location or "" for m in made.values()}
        await catalogue.set_archival(
            "Datafile",
            {i: {ARCHIVAL_STATE: state, ARCHIVAL_IDS: "job"} for i in result[dataset_id]},
        )
    return Archived(investigation_id, result)


@pytest.fixture
async def pool(icat_settings: IcatSettings) -> AsyncIterator[IcatClientPool]:
    pool = IcatClientPool(str(icat_settings.url), size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def sessions(pool: IcatClientPool) -> IcatSessions:
    return IcatSessions(pool)


@pytest.fixture
def selections(pool: IcatClientPool) -> IcatSelections:
    return IcatSelections(pool)


@pytest.fixture
async def root_session(sessions: IcatSessions) -> AsyncIterator[str]:
    session_id = await sessions.login("simple", {"username": "root", "password": "pw"})
    yield session_id
    await sessions.logout(session_id)


@pytest.fixture
async def alice_session(sessions: IcatSessions) -> AsyncIterator[str]:
    session_id = await sessions.login("db", {"username": "alice", "password": "alice-pw"})
    yield session_id
    await sessions.logout(session_id)


def make_investigation_user(url: str, investigation_id: int, user_name: str) -> None:
    root = icat.Client(url)
    root.login("simple", {"username": "root", "password": "pw"})
    try:
        found = root.search(f"SELECT o FROM User o WHERE o.name = '{user_name}'")
        user = found[0] if found else root.new("User", name=user_name)
        if not found:
            user.create()
        investigation = root.get("Investigation", investigation_id)
        root.new("InvestigationUser", user=user, investigation=investigation, role="PI").create()
    finally:
        root.logout()


async def test_a_dataset_resolves_to_its_archived_datafiles_in_location_order(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue)
    first = archived.dataset_ids[0]
    items = await selections.resolve(root_session, [], [first], [])
    expected = archived.files(first)
    assert [(i.datafile_id, i.location) for i in items] == sorted(
        expected.items(), key=lambda kv: kv[1]
    )
    assert {i.dataset_id for i in items} == {first}
    assert [(i.filesize, i.checksum) for i in items] == [
        (1000 + n, f"adler32:{n:08x}") for n in range(3)
    ]


async def test_overlapping_ids_name_each_datafile_once_in_few_icat_calls(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue)
    first_file = next(iter(archived.files(archived.dataset_ids[0])))
    items = await selections.resolve(
        root_session, [archived.investigation_id], archived.dataset_ids, [first_file]
    )
    assert sorted(i.datafile_id for i in items) == sorted(archived.files())
    # Two existence checks, then datafiles and their states per kind of id: 8 searches.
    assert selections.searches <= 8


async def test_alice_restores_her_investigation_but_not_one_she_is_not_a_user_of(
    catalogue: IcatCatalogue,
    selections: IcatSelections,
    alice_session: str,
    icat_settings: IcatSettings,
) -> None:
    hers = await archive_in_icat(catalogue, datasets=1, files=2)
    other = await archive_in_icat(catalogue, datasets=1, files=2)
    make_investigation_user(str(icat_settings.url).rstrip("/"), hers.investigation_id, "db/alice")

    items = await selections.resolve(alice_session, [hers.investigation_id], [], [])
    assert sorted(i.datafile_id for i in items) == sorted(hers.files())

    with pytest.raises(NotFoundError) as refused:
        await selections.resolve(alice_session, [other.investigation_id], [], [])
    assert f"Investigation {other.investigation_id}" in str(refused.value)
    # Nor through its datasets or datafiles, even mixed with her own.
    other_file = next(iter(other.files()))
    with pytest.raises(NotFoundError) as refused:
        await selections.resolve(
            alice_session, [hers.investigation_id], other.dataset_ids, [other_file]
        )
    assert f"Dataset {other.dataset_ids[0]}; Datafile {other_file}" in str(refused.value)


async def test_datafiles_not_finished_on_tape_are_refused_by_id_and_state(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue, datasets=1, files=3)
    ids = sorted(archived.files())
    await catalogue.set_archival("Datafile", {ids[1]: {ARCHIVAL_STATE: "ACTIVE"}})
    await catalogue.set_archival("Datafile", {ids[2]: {ARCHIVAL_STATE: None}})
    with pytest.raises(NotArchivedError) as refused:
        await selections.resolve(root_session, [], archived.dataset_ids, [])
    assert refused.value.states == {ids[1]: "ACTIVE", ids[2]: None}
    assert "not FINISHED" in str(refused.value)
    # The FINISHED one alone is fine.
    [item] = await selections.resolve(root_session, [], [], [ids[0]])
    assert item.datafile_id == ids[0]


async def test_unknown_ids_are_named(selections: IcatSelections, root_session: str) -> None:
    with pytest.raises(NotFoundError) as refused:
        await selections.resolve(root_session, [999_999_001], [999_999_002], [999_999_003])
    assert "Investigation 999999001; Dataset 999999002; Datafile 999999003" in str(refused.value)


async def test_an_unknown_session_is_an_authentication_error(selections: IcatSelections) -> None:
    with pytest.raises(AuthenticationError):
        await selections.resolve(str(uuid.uuid4()), [1], [], [])
