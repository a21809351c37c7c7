"""The ``Selections`` contract: ``FakeSelections`` and ``IcatSelections`` (ICAT emulator) alike.

What the gateway relies on. A restore: investigations, datasets and datafiles resolve to their
datafiles (each once, ordered by dataset and location, with size, checksum and their place in
ICAT's hierarchy), with the user's own session, so ICAT decides what they may read; what they
may not read, or what does not exist, is refused by name; datafiles not FINISHED on tape (as
the functional account wrote it) are refused by id and state. Following an archive: a
dataset's or an investigation's archival records, and look-ups of investigations and datasets
by name, under the same rules. A refused session is the caller's ``SessionRefusedError``.
"""

from __future__ import annotations

import uuid

import pytest

from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.domain.archival import (
    ARCHIVAL_FAILURE,
    ARCHIVAL_STATE,
    CatalogueDatafile,
    CatalogueDataset,
    CatalogueInvestigation,
)
from datastore_common.domain.paths import DatafilePlace
from datastore_common.domain.states import FINISHED
from datastore_common.errors import (
    NotArchivedError,
    NotFoundError,
    SessionRefusedError,
    TooLargeError,
)
from datastore_common.messages import DatafileKey
from datastore_common.testing.fake_selections import FakeSelections

from .conftest import ALICE, ROOT, Archived, SelectionsWorld

#: How a refusal names what the user cannot read (or what does not exist).
UNREADABLE = "not found, or not readable with your ICAT session: "


def in_order(files: dict[int, str], archived_datasets: dict[int, dict[int, str]]) -> list[int]:
    """The datafile ids of ``files`` ordered as a restore lists them: dataset, location."""
    dataset_of = {f: d for d, fs in archived_datasets.items() for f in fs}
    return [f for f, _ in sorted(files.items(), key=lambda kv: (dataset_of[kv[0]], kv[1]))]


async def test_a_dataset_resolves_to_its_datafiles_with_their_bytes(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=3)
    first = archived.dataset_ids[0]
    items = await world.selections.resolve(await world.login(ROOT), [], [first], [])
    expected = archived.files(first)
    assert [(i.datafile_id, i.dataset_id, i.location) for i in items] == [
        (f, first, expected[f]) for f in in_order(expected, archived.datasets)
    ]
    assert [(i.filesize, i.checksum) for i in items] == [
        archived.bytes_of[i.datafile_id] for i in items
    ]


async def test_an_investigation_resolves_to_every_datafile_of_its_datasets(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=2)
    items = await world.selections.resolve(
        await world.login(ROOT), [archived.investigation_id], [], []
    )
    assert [i.datafile_id for i in items] == in_order(archived.files(), archived.datasets)


async def test_datafiles_resolve_by_id_and_overlapping_selections_name_each_once(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=2)
    session = await world.login(ROOT)
    second = archived.dataset_ids[1]
    one_file = next(iter(archived.files(second)))
    [item] = await world.selections.resolve(session, [], [], [one_file, one_file])
    assert (item.datafile_id, item.dataset_id) == (one_file, second)
    items = await world.selections.resolve(
        session, [archived.investigation_id], archived.dataset_ids, [one_file]
    )
    assert [i.datafile_id for i in items] == in_order(archived.files(), archived.datasets)


async def test_nothing_selected_resolves_to_nothing(selections_world: SelectionsWorld) -> None:
    world = selections_world
    assert await world.selections.resolve(await world.login(ROOT), [], [], []) == []


async def test_unknown_ids_are_each_named_once(selections_world: SelectionsWorld) -> None:
    world = selections_world
    archived = await world.archive(datasets=1, files=1)
    with pytest.raises(NotFoundError) as refused:
        await world.selections.resolve(
            await world.login(ROOT),
            [999_999_001, archived.investigation_id, 999_999_001],
            [999_999_002, 999_999_004],
            [999_999_003, 999_999_003],
        )
    assert str(refused.value) == (
        "not found, or not readable with your ICAT session: "
        "Investigation 999999001; Dataset 999999002, 999999004; Datafile 999999003"
    )


async def test_datafiles_not_finished_on_tape_are_refused_by_id_and_state(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=1, files=3)
    ids = in_order(archived.files(), archived.datasets)
    await world.set_states({ids[1]: "ACTIVE", ids[2]: None})
    session = await world.login(ROOT)
    with pytest.raises(NotArchivedError) as refused:
        await world.selections.resolve(session, [], archived.dataset_ids, [])
    assert refused.value.states == {ids[1]: "ACTIVE", ids[2]: None}
    # ... holding what a partial restore would go on with: the FINISHED one.
    assert [i.datafile_id for i in refused.value.restorable] == [ids[0]]
    [item] = await world.selections.resolve(session, [], [], [ids[0]])
    assert item.datafile_id == ids[0]
    assert refused.value.restorable == [item]


async def test_a_finished_datafile_without_a_location_is_refused(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=1, files=1, located=False)
    [datafile_id] = archived.files()
    with pytest.raises(NotArchivedError) as refused:
        await world.selections.resolve(await world.login(ROOT), [], archived.dataset_ids, [])
    assert refused.value.states == {datafile_id: "FINISHED, but no location"}


async def test_what_is_unknown_is_refused_before_what_is_not_archived(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=1, files=1, state="ACTIVE")
    with pytest.raises(NotFoundError, match="Datafile 999999003"):
        await world.selections.resolve(
            await world.login(ROOT), [], archived.dataset_ids, [999_999_003]
        )


async def test_a_user_resolves_what_they_may_read_and_the_rest_is_not_found(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    hers = await world.archive(datasets=1, files=2)
    other = await world.archive(datasets=1, files=2)
    await world.grant(hers.investigation_id, ALICE)
    alice = await world.login(ALICE)

    items = await world.selections.resolve(alice, [hers.investigation_id], [], [])
    assert sorted(i.datafile_id for i in items) == sorted(hers.files())
    other_file = next(iter(other.files()))
    with pytest.raises(NotFoundError) as refused:
        await world.selections.resolve(
            alice, [other.investigation_id, hers.investigation_id], other.dataset_ids, [other_file]
        )
    assert str(refused.value).endswith(
        f"Investigation {other.investigation_id}; Dataset {other.dataset_ids[0]}; "
        f"Datafile {other_file}"
    )


async def test_each_datafile_comes_with_its_place_in_the_hierarchy(
    selections_world: SelectionsWorld,
) -> None:
    """What the planner rebuilds the location from, and the names the ledger shows."""
    world = selections_world
    archived = await world.archive(datasets=1, files=2)
    items = await world.selections.resolve(
        await world.login(ROOT), [archived.investigation_id], [], []
    )
    assert [i.place for i in items] == [
        DatafilePlace(
            instruments=("instrument",),
            facility_cycles=("20XX",),
            investigation=archived.name,
            visit_id="1",
            dataset_type="scan",
            dataset="scan_0000",
            datafile=f"file_{n:04d}.nxs",
        )
        for n in range(2)
    ]
    assert [i.location for i in items] == [
        f"instrument/20XX/{archived.name}-1/scan/scan_0000/file_{n:04d}.nxs" for n in range(2)
    ]
    assert items[0].key == DatafileKey(
        investigation=archived.name, visit_id="1", dataset="scan_0000", datafile="file_0000.nxs"
    )


async def test_a_state_the_functional_account_did_not_write_does_not_count(
    selections_world: SelectionsWorld,
) -> None:
    """ICAT's ``modId`` says who wrote the "Archival state": a FINISHED that root wrote by
    hand is named and refused, never restored."""
    world = selections_world
    archived = await world.archive(datasets=1, files=2, state="ACTIVE")
    ids = in_order(archived.files(), archived.datasets)
    await world.set_states({ids[0]: FINISHED}, by=ROOT)
    await world.set_states({ids[1]: FINISHED})
    session = await world.login(ROOT)
    with pytest.raises(NotArchivedError) as refused:
        await world.selections.resolve(session, [], archived.dataset_ids, [])
    assert refused.value.states == {
        ids[0]: f"FINISHED written by {ROOT!r}, not by Datastore: not counted"
    }
    [item] = await world.selections.resolve(session, [], [], [ids[1]])
    assert item.datafile_id == ids[1]


# ------------------------------------------------------------------------ following an archive


def records_of(
    archived: Archived, archival: dict[int, dict[str, str]], *datasets: int
) -> tuple[CatalogueDatafile, ...]:
    """The datafiles of these datasets (of all, without any) as ICAT records them, by id: the
    archival parameters given (``ARCHIVAL_STATE``: FINISHED for any not given); neither size
    nor checksum (the archival of a dataset does not read them)."""
    return tuple(
        CatalogueDatafile(
            datafile_id,
            dataset_id,
            location.rsplit("/", 1)[-1],
            location,
            None,
            None,
            archival.get(datafile_id, {ARCHIVAL_STATE: FINISHED}),
        )
        for dataset_id in datasets or archived.dataset_ids
        for datafile_id, location in sorted(archived.datasets[dataset_id].items())
    )


async def test_a_datasets_archival_is_every_datafile_with_its_state_and_failure(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=3, state="ACTIVE")
    first = archived.dataset_ids[0]
    failed = min(archived.files(first))
    await world.set_states({failed: "FAILED"}, failures={failed: "user error: gone"})
    records = await world.selections.dataset_archival(await world.login(ROOT), first)
    assert records.datasets == (CatalogueDataset(first, archived.investigation_id, "scan_0000"),)
    active = {ARCHIVAL_STATE: "ACTIVE"}  # "Archival ids" left out
    assert records.datafiles == records_of(
        archived,
        {
            **dict.fromkeys(archived.files(first), active),
            failed: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: gone"},
        },
        first,
    )


async def test_an_investigations_archival_covers_every_dataset(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=3, files=2)
    investigation, records = await world.selections.investigation_archival(
        await world.login(ROOT), archived.investigation_id
    )
    assert investigation == CatalogueInvestigation(
        archived.investigation_id, archived.name, "1", "Title"
    )
    assert records.datasets == tuple(
        CatalogueDataset(d, archived.investigation_id, archived.dataset_names[d])
        for d in archived.dataset_ids
    )
    assert records.datafiles == records_of(archived, {})


async def test_an_archival_of_what_is_unknown_is_not_found_by_name(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    session = await world.login(ROOT)
    with pytest.raises(NotFoundError) as refused:
        await world.selections.dataset_archival(session, 999_999_002)
    assert str(refused.value) == UNREADABLE + "Dataset 999999002"
    with pytest.raises(NotFoundError) as refused:
        await world.selections.investigation_archival(session, 999_999_001)
    assert str(refused.value) == UNREADABLE + "Investigation 999999001"


async def test_investigations_and_datasets_are_found_by_name_with_their_states(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=1)
    second = archived.dataset_ids[1]
    await world.set_states(dict.fromkeys(archived.files(second), "ACTIVE"))
    session = await world.login(ROOT)

    [investigation] = await world.selections.find_investigations(session, archived.name, "1")
    assert (investigation.investigation_id, investigation.name, investigation.visit_id) == (
        archived.investigation_id,
        archived.name,
        "1",
    )
    assert sorted(investigation.dataset_states) == ["ACTIVE", FINISHED]
    assert await world.selections.find_investigations(session, archived.name) == [investigation]
    assert await world.selections.find_investigations(session, archived.name, "2") == []
    assert await world.selections.find_investigations(session, "it's not there") == []

    found = await world.selections.find_datasets(session, archived.name, "1")
    assert found == [
        CatalogueDataset(
            d, archived.investigation_id, archived.dataset_names[d], {ARCHIVAL_STATE: state}
        )
        for d, state in zip(archived.dataset_ids, [FINISHED, "ACTIVE"], strict=True)
    ]
    assert await world.selections.find_datasets(session, archived.name, "1", "scan_0001") == [
        found[1]
    ]
    assert await world.selections.find_datasets(session, archived.name, "1", "scan_9999") == []
    assert await world.selections.find_datasets(session, archived.name, "2") == []


async def test_a_user_follows_what_they_may_read_and_the_rest_is_not_found(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    hers = await world.archive(datasets=1, files=2)
    other = await world.archive(datasets=1, files=2)
    await world.grant(hers.investigation_id, ALICE)
    alice = await world.login(ALICE)

    _, records = await world.selections.investigation_archival(alice, hers.investigation_id)
    assert {f.datafile_id for f in records.datafiles} == set(hers.files())
    records = await world.selections.dataset_archival(alice, hers.dataset_ids[0])
    assert {f.datafile_id for f in records.datafiles} == set(hers.files())
    with pytest.raises(NotFoundError) as refused:
        await world.selections.investigation_archival(alice, other.investigation_id)
    assert str(refused.value) == UNREADABLE + f"Investigation {other.investigation_id}"
    with pytest.raises(NotFoundError) as refused:
        await world.selections.dataset_archival(alice, other.dataset_ids[0])
    assert str(refused.value) == UNREADABLE + f"Dataset {other.dataset_ids[0]}"

    assert await world.selections.find_investigations(alice, other.name) == []
    assert await world.selections.find_datasets(alice, other.name, "1") == []
    assert [
        i.investigation_id for i in await world.selections.find_investigations(alice, hers.name)
    ] == [hers.investigation_id]
    assert [d.dataset_id for d in await world.selections.find_datasets(alice, hers.name, "1")] == (
        hers.dataset_ids
    )


@pytest.mark.parametrize("session", ["", "unknown"])
async def test_an_unknown_or_empty_session_is_refused_on_every_read(
    selections_world: SelectionsWorld, session: str
) -> None:
    """The user's session refused is theirs (401), never a peer refusing Datastore."""
    world = selections_world
    archived = await world.archive(datasets=1, files=1)
    session_id = str(uuid.uuid4()) if session else ""
    reads = [
        world.selections.resolve(session_id, [archived.investigation_id], [], []),
        world.selections.dataset_archival(session_id, archived.dataset_ids[0]),
        world.selections.investigation_archival(session_id, archived.investigation_id),
        world.selections.find_investigations(session_id, archived.name),
        world.selections.find_datasets(session_id, archived.name, "1"),
    ]
    for read in reads:
        with pytest.raises(SessionRefusedError):
            await read


# ------------------------------------------------------ written by Datastore, facility, pages


async def test_a_status_counts_only_the_archival_the_functional_account_wrote(
    selections_world: SelectionsWorld,
) -> None:
    """A state or failure someone else wrote (ICAT's ``modId``) counts as none: not ended."""
    world = selections_world
    archived = await world.archive(datasets=1, files=3, state="ACTIVE")
    forged, failed, active = in_order(archived.files(), archived.datasets)
    await world.set_states({forged: FINISHED}, failures={forged: "user error: forged"}, by=ROOT)
    await world.set_states({failed: "FAILED"}, failures={failed: "system error: gone"})
    session = await world.login(ROOT)
    expected = records_of(
        archived,
        {
            forged: {},
            failed: {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "system error: gone"},
            active: {ARCHIVAL_STATE: "ACTIVE"},
        },
    )
    records = await world.selections.dataset_archival(session, archived.dataset_ids[0])
    assert records.datafiles == expected
    _, records = await world.selections.investigation_archival(session, archived.investigation_id)
    assert records.datafiles == expected


async def test_a_look_up_shows_only_a_dataset_state_the_functional_account_wrote(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=1, state="ACTIVE")
    forged, ours = archived.dataset_ids
    await world.set_dataset_state(forged, FINISHED, by=ROOT)
    session = await world.login(ROOT)
    found = await world.selections.find_datasets(session, archived.name, "1")
    assert [(d.dataset_id, dict(d.archival)) for d in found] == [
        (forged, {}),
        (ours, {ARCHIVAL_STATE: "ACTIVE"}),
    ]
    [investigation] = await world.selections.find_investigations(session, archived.name)
    assert investigation.dataset_states == ("ACTIVE",)


async def test_look_ups_come_by_id_a_page_at_a_time(selections_world: SelectionsWorld) -> None:
    world = selections_world
    archived = await world.archive(datasets=3, files=1)
    first, second, third = archived.dataset_ids
    session = await world.login(ROOT)
    find = world.selections.find_datasets
    page = await find(session, archived.name, "1", limit=2)
    assert [d.dataset_id for d in page] == [first, second]
    page = await find(session, archived.name, "1", after=second, limit=2)
    assert [d.dataset_id for d in page] == [third]
    assert await find(session, archived.name, "1", after=third, limit=2) == []
    found = await world.selections.find_investigations(session, archived.name, limit=1)
    assert [i.investigation_id for i in found] == [archived.investigation_id]
    after = await world.selections.find_investigations(
        session, archived.name, after=archived.investigation_id
    )
    assert after == []


async def test_look_ups_see_only_the_facility(selections_world: SelectionsWorld) -> None:
    world = selections_world
    archived = await world.archive(datasets=1, files=1)
    session = await world.login(ROOT)
    selections = world.selections
    assert isinstance(selections, IcatSelections | FakeSelections)
    selections.facility = "another facility"
    assert await selections.find_investigations(session, archived.name) == []
    assert await selections.find_datasets(session, archived.name, "1") == []


async def test_a_selection_over_its_limit_is_too_large_and_one_at_it_resolves(
    selections_world: SelectionsWorld,
) -> None:
    world = selections_world
    archived = await world.archive(datasets=2, files=3)
    session = await world.login(ROOT)
    named = ([archived.investigation_id], archived.dataset_ids, list(archived.files()))
    with pytest.raises(TooLargeError, match="more than 5 datafiles"):
        await world.selections.resolve(session, *named, max_datafiles=5)
    items = await world.selections.resolve(session, *named, max_datafiles=6)
    assert sorted(i.datafile_id for i in items) == sorted(archived.files())


async def test_a_trusted_writers_archival_counts_as_the_functional_accounts(
    selections_world: SelectionsWorld,
) -> None:
    """``icat.trusted_writers`` (the original Datastore API's account, after taking over from
    it; root stands in for it here): what it wrote restores, shows in a status and in a
    look-up as the functional account's would; trusted no more, it is refused again."""
    world = selections_world
    archived = await world.archive(datasets=2, files=2, state="ACTIVE")
    theirs, ours = archived.dataset_ids
    theirs_files = in_order(archived.files(theirs), archived.datasets)
    await world.set_states(dict.fromkeys(theirs_files, FINISHED), by=ROOT)
    await world.set_dataset_state(theirs, FINISHED, by=ROOT)
    session = await world.login(ROOT)

    world.trust(ROOT)
    items = await world.selections.resolve(session, [], [theirs], [])
    assert [i.datafile_id for i in items] == theirs_files
    records = await world.selections.dataset_archival(session, theirs)
    assert [dict(d.archival) for d in records.datafiles] == [{ARCHIVAL_STATE: FINISHED}] * 2
    found = await world.selections.find_datasets(session, archived.name, "1")
    assert [(d.dataset_id, dict(d.archival)) for d in found] == [
        (theirs, {ARCHIVAL_STATE: FINISHED}),
        (ours, {ARCHIVAL_STATE: "ACTIVE"}),
    ]

    world.trust()
    with pytest.raises(NotArchivedError) as refused:
        await world.selections.resolve(session, [], [theirs], [])
    assert refused.value.states == dict.fromkeys(
        theirs_files, f"FINISHED written by {ROOT!r}, not by Datastore: not counted"
    )
