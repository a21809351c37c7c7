"""Claiming a dataset for one archive request, against the ICAT emulator's unique keys, and
finding datafiles by their ICAT keys."""

from __future__ import annotations

import asyncio

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.domain.archival import ARCHIVAL_IDS
from datastore_common.messages import DatafileKey
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation


async def test_of_replicas_claiming_one_dataset_at_once_exactly_one_wins(
    icat_settings: IcatSettings,
) -> None:
    replicas = [
        IcatCatalogue(icat_settings, pool=IcatClientPool(str(icat_settings.url), size=1))
        for _ in range(4)
    ]
    try:
        spec = seed_investigation(files=1)
        investigation = await replicas[0].ensure_investigation(spec)
        dataset = (await replicas[0].ensure_datasets(investigation, spec.datasets))[
            spec.datasets[0].name
        ]
        answers = await asyncio.gather(
            *(r.claim_dataset(dataset.dataset_id, f"job-{i}") for i, r in enumerate(replicas))
        )
    finally:
        for replica in replicas:
            await replica.close()
    winners = [i for i, answer in enumerate(answers) if answer is None]
    assert len(winners) == 1
    assert {a for a in answers if a is not None} == {f"job-{winners[0]}"}


async def test_datafiles_are_found_by_their_keys_and_missing_ones_left_out(
    catalogue: IcatCatalogue,
) -> None:
    spec = seed_investigation(files=2)
    investigation = await catalogue.ensure_investigation(spec)
    dataset = spec.datasets[0]
    record = (await catalogue.ensure_datasets(investigation, [dataset]))[dataset.name]
    made = await catalogue.ensure_datafiles(
        record.dataset_id,
        [
            NewDatafile(spec=d, location=d.name, file_size=1, checksum=None)
            for d in dataset.datafiles
        ],
    )

    def key(name: str) -> DatafileKey:
        return DatafileKey(
            investigation=spec.name, visit_id=spec.visitId, dataset=dataset.name, datafile=name
        )

    names = [d.name for d in dataset.datafiles]
    found = await catalogue.find_datafiles([key(n) for n in [*names, "never-registered.nxs"]])
    assert found == {key(n): made[n].datafile_id for n in names}


async def test_of_replicas_claiming_an_ended_archive_again_at_once_exactly_one_wins(
    icat_settings: IcatSettings,
) -> None:
    """Re-archiving a FAILED dataset: the old ids are swapped for new ones (compare and
    swap); of four requests doing it at once one wins, the others learn it was not them."""
    replicas = [
        IcatCatalogue(icat_settings, pool=IcatClientPool(str(icat_settings.url), size=1))
        for _ in range(4)
    ]
    try:
        spec = seed_investigation(files=1)
        investigation = await replicas[0].ensure_investigation(spec)
        dataset = (await replicas[0].ensure_datasets(investigation, spec.datasets))[
            spec.datasets[0].name
        ]
        assert await replicas[0].claim_dataset(dataset.dataset_id, "old-job") is None
        answers = await asyncio.gather(
            *(
                r.claim_dataset(dataset.dataset_id, f"job-{i}", replacing="old-job")
                for i, r in enumerate(replicas)
            )
        )
        # A claim replacing ids that are no longer there gets the current ones.
        stale = await replicas[0].claim_dataset(dataset.dataset_id, "late", replacing="old-job")
        recorded = (await replicas[0].datasets_by_id([dataset.dataset_id]))[0].archival
    finally:
        for replica in replicas:
            await replica.close()
    winners = [i for i, answer in enumerate(answers) if answer is None]
    assert len(winners) == 1
    assert {a for a in answers if a is not None} <= {f"job-{winners[0]}", ""}
    assert stale == f"job-{winners[0]}"
    assert recorded[ARCHIVAL_IDS] == f"job-{winners[0]}"
