"""The ``Selections`` contract: ``FakeSelections`` and ``IcatSelections`` (ICAT emulator) alike.

What the gateway's restore relies on: investigations, datasets and datafiles resolve to their
datafiles (each once, ordered by dataset and location, with size and checksum), with the
user's own session, so ICAT decides what they may read; what they may not read, or what does
not exist, is refused by name; datafiles not FINISHED on tape are refused by id and state.
"""

from __future__ import annotations

import uuid

import pytest

from datastore_common.errors import AuthenticationError, NotArchivedError, NotFoundError

from .conftest import ALICE, ROOT, SelectionsWorld


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
    [item] = await world.selections.resolve(session, [], [], [ids[0]])
    assert item.datafile_id == ids[0]


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


@pytest.mark.parametrize("session", ["", "unknown"])
async def test_an_unknown_or_empty_session_is_an_authentication_error(
    selections_world: SelectionsWorld, session: str
) -> None:
    archived = await selections_world.archive(datasets=1, files=1)
    session_id = str(uuid.uuid4()) if session else ""
    with pytest.raises(AuthenticationError):
        await selections_world.selections.resolve(session_id, [archived.investigation_id], [], [])
