"""Taking over from the original Datastore API on the ICAT emulator: what it wrote (python-icat,
ParameterTypes of units "", tests/support/original_api.py) is read with
``icat.archival_parameter_units: ""``: restored and shown when it is FINISHED, adopted by
resync while in flight; with our own units it is not seen at all."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import icat
import pytest

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.selections import IcatSelections
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.errors import NotArchivedError
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation
from tests.support.original_api import (
    ORIGINAL_UNITS,
    new_dataset,
    new_investigation,
    poll,
    record_submitted,
)

pytestmark = pytest.mark.integration


async def registered(catalogue: IcatCatalogue, files: int) -> tuple[str, int, list[int]]:
    """An investigation with one dataset of ``files`` datafiles at their place, no archival
    parameter yet: (its name, the dataset id, the datafile ids)."""
    spec = seed_investigation(f"ORIG-{uuid.uuid4().hex[:10]}", files=files)
    investigation_id = await catalogue.ensure_investigation(spec)
    [dataset] = (await catalogue.ensure_datasets(investigation_id, spec.datasets)).values()
    folder = f"instrument/20XX/{spec.name}-1/scan/{dataset.name}"
    made = await catalogue.ensure_datafiles(
        dataset.dataset_id,
        [
            NewDatafile(df, f"{folder}/{df.name}", 1000, "adler32:00000001")
            for df in spec.datasets[0].datafiles
        ],
    )
    return spec.name, dataset.dataset_id, sorted(m.datafile_id for m in made.values())


def as_the_original(settings: IcatSettings) -> icat.Client:
    """python-icat logged in as the original's functional account: ours (the same account)."""
    client = icat.Client(str(settings.url).rstrip("/"), checkCert=False)
    client.login(settings.auth, {"username": settings.username, "password": "datastore-pw"})
    return client


@pytest.fixture
async def pool(icat_settings: IcatSettings) -> AsyncIterator[IcatClientPool]:
    pool = IcatClientPool(str(icat_settings.url), size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def root_session(pool: IcatClientPool) -> AsyncIterator[str]:
    sessions = IcatSessions(pool)
    session_id = await sessions.login("simple", {"username": "root", "password": "pw"})
    yield session_id
    await sessions.logout(session_id)


async def test_what_it_archived_restores_and_shows_finished(
    catalogue: IcatCatalogue, icat_settings: IcatSettings, pool: IcatClientPool, root_session: str
) -> None:
    name, dataset_id, datafile_ids = await registered(catalogue, files=2)
    client = as_the_original(icat_settings)
    try:
        record_submitted(client, icat_settings.facility, dataset_id, [str(uuid.uuid4())])
        poll(client, dataset_id, dict.fromkeys(datafile_ids, "FINISHED"), "FINISHED", done=True)
    finally:
        client.logout()
    taking_over = IcatSelections(
        pool, archival_writer=icat_settings.functional_user, parameter_units=ORIGINAL_UNITS
    )

    items = await taking_over.resolve(root_session, [], [dataset_id], [])
    assert [i.datafile_id for i in items] == datafile_ids
    records = await taking_over.dataset_archival(root_session, dataset_id)
    assert [dict(d.archival) for d in records.datafiles] == [{ARCHIVAL_STATE: "FINISHED"}] * 2
    [found] = await taking_over.find_datasets(root_session, name, "1")
    assert dict(found.archival) == {ARCHIVAL_STATE: "FINISHED"}

    # Our own units are other ParameterTypes: nothing of the original's is seen.
    ours = IcatSelections(pool, archival_writer=icat_settings.functional_user)
    with pytest.raises(NotArchivedError) as refused:
        await ours.resolve(root_session, [], [dataset_id], [])
    assert refused.value.states == dict.fromkeys(datafile_ids)


async def test_what_it_left_in_flight_is_adopted_by_resync(
    catalogue: IcatCatalogue, icat_settings: IcatSettings
) -> None:
    _, dataset_id, datafile_ids = await registered(catalogue, files=3)
    job_a, job_b = str(uuid.uuid4()), str(uuid.uuid4())
    client = as_the_original(icat_settings)
    try:
        record_submitted(client, icat_settings.facility, dataset_id, [job_a, job_b])
        states = dict(zip(datafile_ids, ("ARCHIVING", "READY", "FINISHED"), strict=True))
        poll(client, dataset_id, states, "READY", done=False)
    finally:
        client.logout()
    settings = icat_settings.model_copy(update={"archival_parameter_units": ORIGINAL_UNITS})
    taking_over = IcatCatalogue(settings, pool=IcatClientPool(str(settings.url), size=1))
    try:
        jobs = {
            job.job_id: sorted(d.datafile_id for d in job.datafiles)
            for job in await taking_over.active_archival_jobs()
            if job.job_id in {job_a, job_b}
        }
    finally:
        await taking_over.close()
    assert jobs == {job_a: datafile_ids[:2], job_b: datafile_ids[:2]}


async def test_its_own_entities_restore_at_their_place(
    icat_settings: IcatSettings, pool: IcatClientPool, root_session: str
) -> None:
    """Investigation, dataset and datafiles made by the original itself (its
    ``new_investigation`` / ``new_dataset``), located in the layout."""
    name = f"ORIG-{uuid.uuid4().hex[:10]}"
    folder = f"instrument/20XX/{name}-1/scan/scan_0000"
    files = {f"file_{i:04d}.nxs": (f"{folder}/file_{i:04d}.nxs", 10, "0000000a") for i in range(2)}
    client = as_the_original(icat_settings)
    try:
        investigation_id = new_investigation(client, icat_settings.facility, name, "1")
        dataset_id = new_dataset(
            client, icat_settings.facility, investigation_id, "scan_0000", files, ["job"]
        )
        datafile_ids = sorted(
            int(i)
            for i in client.search(f"SELECT o.id FROM Datafile o WHERE o.dataset.id = {dataset_id}")
        )
        poll(client, dataset_id, dict.fromkeys(datafile_ids, "FINISHED"), "FINISHED", done=True)
    finally:
        client.logout()
    taking_over = IcatSelections(
        pool, archival_writer=icat_settings.functional_user, parameter_units=ORIGINAL_UNITS
    )
    items = await taking_over.resolve(root_session, [investigation_id], [], [])
    assert sorted(i.location for i in items) == sorted(loc for loc, _, _ in files.values())
    assert {i.place.investigation for i in items} == {name}
