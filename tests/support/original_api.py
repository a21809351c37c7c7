"""What the original Datastore API (ral-facilities/datastore-api, v0.1.0) leaves in ICAT, written
the way it writes it: python-icat as its functional account, on ParameterTypes of units ""
(``IcatCache`` looks them up with ``units=""`` and, with ``create_parameter_types``, creates
them so), STRING values.

- ``IcatClient.new_dataset``: the Dataset gets "Archival state" SUBMITTED and "Archival ids"
  "" and each Datafile "Archival state" SUBMITTED; ``DatasetArchiver.create_fts_jobs`` sets
  "Archival ids" to the FTS job ids, comma-joined.
- Its poller (``lifespan.poll_fts`` -> ``StateController.update_jobs``) writes FTS's states:
  each file's ``file_state`` on its Datafile, the jobs' aggregate (``StateCounter.state``) on
  the Dataset; and once no job of a dataset is active, deletes its "Archival ids".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The original's ParameterType.units for its archival parameters.
ORIGINAL_UNITS = ""
ARCHIVAL_STATE = "Archival state"
ARCHIVAL_IDS = "Archival ids"


def parameter_type(client: Any, facility: str, name: str) -> Any:
    """Its ParameterType ``name`` (units ""), created as ``IcatCache`` does when missing."""
    query = (
        f"SELECT o FROM ParameterType o JOIN o.facility f WHERE f.name = '{facility}' "
        f"AND o.name = '{name}' AND o.units = '{ORIGINAL_UNITS}'"
    )
    found = client.search(query)
    if found:
        return found[0]
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
    bean.id = client.create(bean)
    return bean


def archive_as_the_original(
    client: Any,
    facility: str,
    dataset_id: int,
    datafile_states: Mapping[int, str],
    dataset_state: str,
    job_ids: list[str],
    *,
    done: bool,
) -> None:
    """The Dataset ``dataset_id`` and its Datafiles as the original leaves them: each datafile
    in its state, the dataset in ``dataset_state``, "Archival ids" the job ids, deleted
    (``done``) as its poller does once no job is active."""
    state_type = parameter_type(client, facility, ARCHIVAL_STATE)
    ids_type = parameter_type(client, facility, ARCHIVAL_IDS)
    dataset = client.get("Dataset", dataset_id)
    beans = [
        client.new("DatasetParameter", type=state_type, stringValue=dataset_state, dataset=dataset),
        client.new(
            "DatasetParameter", type=ids_type, stringValue=",".join(job_ids), dataset=dataset
        ),
    ]
    for datafile_id, state in datafile_states.items():
        datafile = client.get("Datafile", datafile_id)
        beans.append(
            client.new("DatafileParameter", type=state_type, stringValue=state, datafile=datafile)
        )
    client.createMany(beans)
    if done:
        [ids] = client.search(
            "SELECT p FROM DatasetParameter p JOIN p.dataset ds JOIN p.type t "
            f"WHERE ds.id = {dataset_id} AND t.id = {ids_type.id}"
        )
        client.deleteMany([ids])
