"""icat-writer ``set_archival_state``: an admin's state set by hand, written as asked."""

from __future__ import annotations

from datetime import date

import pytest

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_STATE, DELETION_DATE
from datastore_common.errors import NotFoundError
from datastore_common.messages import ArchivalStateSet, wrap
from tests.support.factories import seed_investigation
from tests.unit.icat_writer.test_handlers import World


def change(dataset_id: int, state: str = "FAILED", **more: object) -> object:
    data = ArchivalStateSet(
        change_id="c1",
        dataset_id=dataset_id,
        state=state,  # type: ignore[arg-type]
        reason="tape lost",
        datafiles=more.pop("datafiles", True),  # type: ignore[arg-type]
        set_by="simple/root",
        **more,  # type: ignore[arg-type]
    )
    return wrap(data, source="gateway", correlation_id="c1", user="simple/root")


async def archived(world: World) -> int:
    investigation = seed_investigation(files=2)
    world.put_sources(investigation)
    await world.register(world.request(investigation))
    [job] = world.registered()[0].jobs
    await world.report(job, ["FINISHED", "FINISHED"])
    return world.dataset(investigation)


async def test_the_dataset_and_its_files_get_the_state_who_and_why() -> None:
    world = World()
    dataset_id = await archived(world)
    await world.writer.set_archival_state(change(dataset_id, deletion_date=date(2030, 1, 31)))
    dataset = world.catalogue.archival("Dataset", dataset_id)
    assert dataset[ARCHIVAL_STATE] == "FAILED"
    assert dataset[ARCHIVAL_FAILURE] == "system error: set FAILED by hand by simple/root: tape lost"
    assert dataset[DELETION_DATE] == "2030-01-31"
    assert set(world.file_states(dataset_id).values()) == {"FAILED"}
    writes = world.catalogue.writes
    await world.writer.set_archival_state(change(dataset_id, deletion_date=date(2030, 1, 31)))
    assert world.catalogue.writes == writes  # redelivered: nothing written again


async def test_the_dataset_alone_when_asked_and_finished_clears_the_failure() -> None:
    world = World()
    dataset_id = await archived(world)
    await world.writer.set_archival_state(change(dataset_id, "FAILED"))
    await world.writer.set_archival_state(change(dataset_id, "FINISHED", datafiles=False))
    dataset = world.catalogue.archival("Dataset", dataset_id)
    assert dataset[ARCHIVAL_STATE] == "FINISHED" and ARCHIVAL_FAILURE not in dataset
    assert set(world.file_states(dataset_id).values()) == {"FAILED"}


async def test_an_unknown_dataset_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="dataset 424242"):
        await World().writer.set_archival_state(change(424242))
