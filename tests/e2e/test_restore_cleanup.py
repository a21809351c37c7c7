"""Restored copies expire, through the four services: with a short ``restore.retention_days``
the gateway's cleaner removes the copy Datastore wrote, and leaves alone a copy someone
replaced meanwhile and a file Datastore never restored."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.api_client import dataset_folder, icat_root, wait_for, write_idc_files
from tests.e2e.test_restore_repeatable import (
    archive_and_wait,
    datafile_ids,
    ended,
    exists,
    login,
    restore,
)
from tests.support.stack_fixtures import StackFactory

pytestmark = pytest.mark.e2e

#: About 20 seconds, in days.
RETENTION_DAYS = 20 / 86400


@pytest.mark.timeout(600)
def test_an_expired_copy_is_removed_and_only_one_datastore_wrote(
    datastore_stack_factory: StackFactory,
) -> None:
    stack = datastore_stack_factory(
        restore={"retention_days": RETENTION_DAYS, "cleaner_interval_seconds": 1}
    )
    udc = stack.settings.user_data_cache
    client = icat_root(stack.icat_url)
    try:
        name = f"CLN{uuid.uuid4().hex[:8].upper()}"
        _, dataset_id = archive_and_wait(stack, client, name, files=3)
        ids = datafile_ids(client, dataset_id)
    finally:
        client.cleanup()
    folder = dataset_folder(name)
    # Someone else's file beside the restored ones: Datastore never restored it.
    write_idc_files(udc, folder, ["file_0002.nxs"], size=1000)
    headers = login(stack)

    answer = restore(stack, headers, {"datafile_ids": [ids["file_0000.nxs"], ids["file_0001.nxs"]]})
    assert answer.status_code == 202, answer.text
    done = ended(stack, headers, answer.json()["request_id"])
    assert done["state"] == "FINISHED", done
    # Someone replaces one restored copy with a file of their own before it expires.
    write_idc_files(udc, folder, ["file_0001.nxs"], size=1000)

    wait_for(
        lambda: not exists(udc, f"/{folder}/file_0000.nxs"),
        120,
        "the cleaner to remove the expired copy Datastore wrote",
    )
    assert exists(udc, f"/{folder}/file_0001.nxs")  # not the copy it wrote: left alone
    assert exists(udc, f"/{folder}/file_0002.nxs")  # never restored by Datastore
    for event in ("restored_copy_removed", "restored_copy_forgotten"):
        wait_for(lambda e=event: e in stack.logs("gateway"), 60, f"{event} in the gateway's log")
