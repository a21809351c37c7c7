"""IcatSelections against the ICAT emulator: a restore selection, the archival of datasets and
investigations and look-ups by name, read with the user's own session, so ICAT's
authorization decides (root reads everything; db/alice only the investigations she is an
InvestigationUser of)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import icat
import pytest
from pydantic import SecretStr

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.domain.paths import DatafilePlace
from datastore_common.errors import NotArchivedError, NotFoundError, SessionRefusedError
from datastore_common.messages import DatafileKey
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation

pytestmark = pytest.mark.integration


@dataclass
class Archived:
    """One investigation: dataset ids -> {datafile id: location}, in dataset order."""

    investigation_id: int
    datasets: dict[int, dict[int, str]]
    name: str = ""

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
    return Archived(investigation_id, result, spec.name)


@pytest.fixture
async def pool(icat_settings: IcatSettings) -> AsyncIterator[IcatClientPool]:
    pool = IcatClientPool(str(icat_settings.url), size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def sessions(pool: IcatClientPool) -> IcatSessions:
    return IcatSessions(pool)


@pytest.fixture
def selections(pool: IcatClientPool, icat_settings: IcatSettings) -> IcatSelections:
    # The catalogue fixture writes as the functional account of the same settings.
    return IcatSelections(pool, archival_writer=icat_settings.functional_user)


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
    # Named as ICAT names them (the request ledger shows a restore's datasets so).
    keys = [i.key for i in items]
    assert [(k.visit_id, k.dataset, k.datafile) for k in keys] == [
        ("1", "scan_0000", f"file_{n:04d}.nxs") for n in range(3)
    ]
    assert {k.investigation for k in keys} == {items[0].location.split("/")[2][:-2]}


async def test_overlapping_ids_name_each_datafile_once_in_few_icat_calls(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue)
    first_file = next(iter(archived.files(archived.dataset_ids[0])))
    items = await selections.resolve(
        root_session, [archived.investigation_id], archived.dataset_ids, [first_file]
    )
    assert sorted(i.datafile_id for i in items) == sorted(archived.files())
    # Two existence checks, datafiles and their states per kind of id, then the instruments
    # and the facility cycles of the investigations found: 10 searches.
    assert selections.searches <= 10


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


async def test_an_unknown_session_is_the_callers_session_refused(
    selections: IcatSelections,
) -> None:
    """ICAT refusing the user's session is theirs (401), on every read, never a peer
    refusing Datastore (503)."""
    unknown = str(uuid.uuid4())
    reads = [
        selections.resolve(unknown, [1], [], []),
        selections.dataset_archival(unknown, 1),
        selections.investigation_archival(unknown, 1),
        selections.find_investigations(unknown, "ABC123"),
        selections.find_datasets(unknown, "ABC123", "1"),
    ]
    for read in reads:
        with pytest.raises(SessionRefusedError):
            await read
    with pytest.raises(SessionRefusedError):
        await selections.find_datasets("", "ABC123", "1")


async def test_a_datasets_archival_is_every_datafile_with_its_state_and_failure(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue, datasets=2, files=3, state="ACTIVE")
    first = archived.dataset_ids[0]
    failed = min(archived.files(first))
    await catalogue.set_archival(
        "Datafile", {failed: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: gone"}}
    )
    records = await selections.dataset_archival(root_session, first)
    [dataset] = records.datasets
    assert (dataset.dataset_id, dataset.investigation_id, dataset.name) == (
        first,
        archived.investigation_id,
        "scan_0000",
    )
    assert {f.datafile_id: f.location for f in records.datafiles} == archived.files(first)
    states = {f.datafile_id: dict(f.archival) for f in records.datafiles}
    assert states.pop(failed) == {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: gone"}
    assert list(states.values()) == [{ARCHIVAL_STATE: "ACTIVE"}] * 2  # "Archival ids" left out
    assert selections.searches <= 3


async def test_an_investigations_archival_covers_every_dataset(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue, datasets=3, files=2)
    investigation, records = await selections.investigation_archival(
        root_session, archived.investigation_id
    )
    assert (investigation.name, investigation.visit_id) == (archived.name, "1")
    assert [d.dataset_id for d in records.datasets] == archived.dataset_ids
    assert {f.datafile_id for f in records.datafiles} == set(archived.files())
    assert {f.archival[ARCHIVAL_STATE] for f in records.datafiles} == {"FINISHED"}
    assert selections.searches <= 4


async def test_alice_follows_her_investigation_only(
    catalogue: IcatCatalogue,
    selections: IcatSelections,
    alice_session: str,
    icat_settings: IcatSettings,
) -> None:
    hers = await archive_in_icat(catalogue, datasets=1, files=2)
    other = await archive_in_icat(catalogue, datasets=1, files=2)
    make_investigation_user(str(icat_settings.url).rstrip("/"), hers.investigation_id, "db/alice")

    _, records = await selections.investigation_archival(alice_session, hers.investigation_id)
    assert {f.datafile_id for f in records.datafiles} == set(hers.files())
    with pytest.raises(NotFoundError, match=f"Investigation {other.investigation_id}"):
        await selections.investigation_archival(alice_session, other.investigation_id)
    with pytest.raises(NotFoundError, match=f"Dataset {other.dataset_ids[0]}"):
        await selections.dataset_archival(alice_session, other.dataset_ids[0])
    assert await selections.find_investigations(alice_session, other.name) == []
    assert await selections.find_datasets(alice_session, other.name, "1") == []
    assert [
        i.investigation_id for i in await selections.find_investigations(alice_session, hers.name)
    ] == [hers.investigation_id]


async def test_investigations_and_datasets_are_found_by_name_with_their_states(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue, datasets=2, files=1)
    await catalogue.set_archival(
        "Dataset",
        {
            archived.dataset_ids[0]: {ARCHIVAL_STATE: "FINISHED"},
            archived.dataset_ids[1]: {ARCHIVAL_STATE: "ACTIVE"},
        },
    )
    [investigation] = await selections.find_investigations(root_session, archived.name, "1")
    assert investigation.investigation_id == archived.investigation_id
    assert sorted(investigation.dataset_states) == ["ACTIVE", "FINISHED"]
    assert await selections.find_investigations(root_session, archived.name, "2") == []

    found = await selections.find_datasets(root_session, archived.name, "1")
    assert [(d.dataset_id, d.name, d.archival.get(ARCHIVAL_STATE)) for d in found] == [
        (archived.dataset_ids[0], "scan_0000", "FINISHED"),
        (archived.dataset_ids[1], "scan_0001", "ACTIVE"),
    ]
    [one] = await selections.find_datasets(root_session, archived.name, "1", "scan_0001")
    assert one.dataset_id == archived.dataset_ids[1]
    assert await selections.find_investigations(root_session, "it's not there") == []


async def test_each_datafile_comes_with_its_place_in_the_hierarchy(
    catalogue: IcatCatalogue, selections: IcatSelections, root_session: str
) -> None:
    archived = await archive_in_icat(catalogue, datasets=1, files=1)
    [item] = await selections.resolve(root_session, [archived.investigation_id], [], [])
    name = item.location.split("/")[2].rsplit("-", 1)[0]
    assert item.place == DatafilePlace(
        instruments=("instrument",),
        facility_cycles=("20XX",),
        investigation=name,
        visit_id="1",
        dataset_type="scan",
        dataset="scan_0000",
        datafile="file_0000.nxs",
    )
    assert item.location == f"instrument/20XX/{name}-1/scan/scan_0000/file_0000.nxs"
    # The names it travels with to the ledger come from the same row.
    assert item.key == DatafileKey(
        investigation=name, visit_id="1", dataset="scan_0000", datafile="file_0000.nxs"
    )


async def test_a_state_the_functional_account_did_not_write_does_not_count(
    catalogue: IcatCatalogue,
    selections: IcatSelections,
    root_session: str,
    icat_settings: IcatSettings,
) -> None:
    """The emulator sets modId to the writer's plugin/name, as ICAT does: a FINISHED that
    root wrote by hand is named and refused (409), never restored."""
    archived = await archive_in_icat(catalogue, datasets=1, files=2, state="ACTIVE")
    ids = sorted(archived.files())
    by_hand = IcatCatalogue(
        icat_settings.model_copy(update={"username": "root", "password": SecretStr("pw")}),
        pool=IcatClientPool(str(icat_settings.url), size=1),
    )
    try:
        await by_hand.set_archival("Datafile", {ids[0]: {ARCHIVAL_STATE: "FINISHED"}})
    finally:
        await by_hand.close()
    await catalogue.set_archival("Datafile", {ids[1]: {ARCHIVAL_STATE: "FINISHED"}})
    with pytest.raises(NotArchivedError) as refused:
        await selections.resolve(root_session, [], archived.dataset_ids, [])
    assert list(refused.value.states) == [ids[0]]
    assert "written by 'simple/root', not by Datastore" in str(refused.value)
    [item] = await selections.resolve(root_session, [], [], [ids[1]])
    assert item.datafile_id == ids[1]
