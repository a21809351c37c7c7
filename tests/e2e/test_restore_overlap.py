"""Two restores of one dataset at the same time, through the four services: each file is
staged once (one restore recalls it, the other follows that transfer and is told so in
``already_in_flight``), neither overwrites the other's copy, and both end FINISHED with
their own progress."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.api_client import dataset_folder, xrootd_adler32
from tests.e2e.test_restore_repeatable import (
    archive_and_wait,
    datafile_ids,
    ended,
    icat_client,
    login,
    restore,
)
from tests.support.stack_fixtures import DatastoreStack

__all__ = ["icat_client"]  # the fixture, shared with test_restore_repeatable

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_two_concurrent_restores_of_one_dataset_stage_each_file_once(
    datastore_stack: DatastoreStack, icat_client: Any
) -> None:
    stack = datastore_stack
    udc = stack.settings.user_data_cache
    name = f"OVL{uuid.uuid4().hex[:8].upper()}"
    sums, dataset_id = archive_and_wait(stack, icat_client, name, files=4)
    ids = sorted(datafile_ids(icat_client, dataset_id).values())
    headers = login(stack)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(
            pool.map(lambda _: restore(stack, headers, {"dataset_ids": [dataset_id]}), range(2))
        )
    for answer in answers:
        assert answer.status_code == 202, answer.text
    accepted = [answer.json() for answer in answers]
    assert accepted[0]["request_id"] != accepted[1]["request_id"]
    followed = [set(one["already_in_flight"]) for one in accepted]
    # No file is followed by both: one of the two recalls it.
    assert not (followed[0] & followed[1])

    shown = [ended(stack, headers, one["request_id"]) for one in accepted]
    recalled: list[int] = []
    for one, done in zip(accepted, shown, strict=True):
        assert done["state"] == "FINISHED", done
        own = [job for job in done["jobs"] if not job["job_id"].endswith(":in-flight")]
        following = [job for job in done["jobs"] if job["job_id"].endswith(":in-flight")]
        assert sorted(job["job_id"] for job in own) == sorted(one["job_ids"])
        recalled.append(sum(job["files_total"] for job in own))
        assert sum(job["files_total"] for job in done["jobs"]) == len(ids)
        assert sum(job["files_done"] for job in following) == len(one["already_in_flight"])
    assert sum(recalled) == len(ids)  # each file staged once, by one of the two
    folder = dataset_folder(name)
    for file_name, adler in sums.items():
        assert xrootd_adler32(udc, f"/{folder}/{file_name}") == adler
