"""What the original Datastore API (ral-facilities/datastore-api, v0.1.0) leaves in ICAT, written
the way it writes it: python-icat as its functional account, on ParameterTypes of units ""
(``IcatCache`` looks them up with ``units=""`` and, with ``create_parameter_types``, creates
them so), STRING values.

- ``IcatClient.new_investigation``: the Investigation with its InvestigationInstrument and
  InvestigationFacilityCycle; ``IcatClient.new_dataset``: the Dataset with its Datafiles (the
  request's ``location``), "Archival state" SUBMITTED on each, and "Archival ids" on the
  Dataset only, the FTS job ids comma-joined (``DatasetArchiver.create_fts_jobs``).
- Its poller (``lifespan.poll_fts`` -> ``StateController.update_jobs``) then updates FTS's
  states: each file's ``file_state`` on its Datafile, the jobs' aggregate
  (``StateCounter.state``) on the Dataset; and once no job of the dataset is active, deletes
  its "Archival ids" (``beans_to_delete``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The original's ParameterType.units for its archival parameters.
ORIGINAL_UNITS = ""
ARCHIVAL_STATE = "Archival state"
ARCHIVAL_IDS = "Archival ids"


def parameter_type(client: Any, facility: str, name: str) -> int:
    """The id of its ParameterType ``name`` (units ""), created as ``IcatCache`` does when
    missing."""
    query = (
        f"SELECT o FROM ParameterType o JOIN o.facility f WHERE f.name = '{facility}' "
        f"AND o.name = '{name}' AND o.units = '{ORIGINAL_UNITS}'"
    )
    found = client.search(query)
    if found:
        return int(found[0].id)
    [facility_bean] = client.search(f"SELECT o FROM Facility o WHERE o.name = '{facility}'")
    bean = client.new(
        "ParameterType",
        name=name,
        units=ORIGINAL_UNITS,
        valueType="STRING",
        applicableToDataset=True,
        applicableToDatafile=True,
        facility=facility_bean,
    )
    return int(client.create(bean))


def _type(client: Any, type_id: int) -> Any:
    """A reference to a ParameterType by id (one bean per parameter: suds sends a bean shared
    by several only once)."""
    return client.new("ParameterType", id=type_id)


def _one(client: Any, bean: str, facility: str, name: str) -> Any:
    [found] = client.search(
        f"SELECT o FROM {bean} o JOIN o.facility f WHERE f.name = '{facility}' "
        f"AND o.name = '{name}'"
    )
    return found


def new_investigation(
    client: Any,
    facility: str,
    name: str,
    visit_id: str,
    *,
    investigation_type: str = "type",
    instrument: str = "instrument",
    facility_cycle: str = "20XX",
) -> int:
    """The Investigation as ``IcatClient._new_investigation_entity`` creates it; its id."""
    [facility_bean] = client.search(f"SELECT o FROM Facility o WHERE o.name = '{facility}'")
    investigation = client.new(
        "Investigation",
        name=name,
        visitId=visit_id,
        title="Title",
        facility=facility_bean,
        type=_one(client, "InvestigationType", facility, investigation_type),
        investigationFacilityCycles=[
            client.new(
                "InvestigationFacilityCycle",
                facilityCycle=_one(client, "FacilityCycle", facility, facility_cycle),
            )
        ],
        investigationInstruments=[
            client.new(
                "InvestigationInstrument",
                instrument=_one(client, "Instrument", facility, instrument),
            )
        ],
    )
    return int(client.create(investigation))


def new_dataset(
    client: Any,
    facility: str,
    investigation_id: int,
    name: str,
    files: Mapping[str, tuple[str, int, str]],
    job_ids: Sequence[str],
    *,
    dataset_type: str = "scan",
) -> int:
    """The Dataset as ``IcatClient.new_dataset`` and ``DatasetArchiver`` create it: its
    Datafiles (name -> (location, size, checksum)), each "Archival state" SUBMITTED, and
    "Archival ids" the jobs submitted; its id."""
    state_type = parameter_type(client, facility, ARCHIVAL_STATE)
    ids_type = parameter_type(client, facility, ARCHIVAL_IDS)
    datafiles = [
        client.new(
            "Datafile",
            name=file_name,
            location=location,
            fileSize=size,
            checksum=checksum,
            parameters=[
                client.new(
                    "DatafileParameter", type=_type(client, state_type), stringValue="SUBMITTED"
                )
            ],
        )
        for file_name, (location, size, checksum) in files.items()
    ]
    dataset = client.new(
        "Dataset",
        name=name,
        complete=True,
        investigation=client.get("Investigation", investigation_id),
        type=_one(client, "DatasetType", facility, dataset_type),
        datafiles=datafiles,
        parameters=[
            client.new("DatasetParameter", type=_type(client, state_type), stringValue="SUBMITTED"),
            client.new(
                "DatasetParameter", type=_type(client, ids_type), stringValue=",".join(job_ids)
            ),
        ],
    )
    return int(client.create(dataset))


def record_submitted(client: Any, facility: str, dataset_id: int, job_ids: Sequence[str]) -> None:
    """Its parameters on a Dataset that exists (with its Datafiles) as ``new_dataset`` leaves
    them: "Archival state" SUBMITTED everywhere, "Archival ids" the jobs."""
    state_type = parameter_type(client, facility, ARCHIVAL_STATE)
    ids_type = parameter_type(client, facility, ARCHIVAL_IDS)
    dataset = client.get("Dataset INCLUDE Datafile", dataset_id)
    beans = [
        client.new(
            "DatasetParameter",
            type=_type(client, state_type),
            stringValue="SUBMITTED",
            dataset=dataset,
        ),
        client.new(
            "DatasetParameter",
            type=_type(client, ids_type),
            stringValue=",".join(job_ids),
            dataset=dataset,
        ),
    ]
    beans += [
        client.new(
            "DatafileParameter",
            type=_type(client, state_type),
            stringValue="SUBMITTED",
            datafile=df,
        )
        for df in dataset.datafiles
    ]
    client.createMany(beans)


def poll(
    client: Any,
    dataset_id: int,
    file_states: Mapping[int, str],
    dataset_state: str,
    *,
    done: bool,
) -> None:
    """One pass of its poller over the dataset: each Datafile's and the Dataset's "Archival
    state" updated (read with their relations, ``includes="1"``, as it updates them);
    "Archival ids" deleted when ``done`` (no job of it active any more)."""
    where = f"t.name = '{ARCHIVAL_STATE}' AND t.units = '{ORIGINAL_UNITS}'"
    for datafile_id, state in file_states.items():
        [parameter] = client.search(
            "SELECT p FROM DatafileParameter p JOIN p.datafile df JOIN p.type t "
            f"WHERE df.id = {datafile_id} AND {where} INCLUDE p.type, p.datafile"
        )
        parameter.stringValue = state
        client.update(parameter)
    [parameter] = client.search(
        "SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN p.type t "
        f"WHERE ds.id = {dataset_id} AND {where} INCLUDE p.type, p.dataset"
    )
    parameter.stringValue = dataset_state
    client.update(parameter)
    if done:
        [ids] = client.search(
            "SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN p.type t "
            f"WHERE ds.id = {dataset_id} AND t.name = '{ARCHIVAL_IDS}' "
            f"AND t.units = '{ORIGINAL_UNITS}'"
        )
        client.deleteMany([ids])
