"""The tape server's prepare emulation: migration, eviction and staging, as FTS3 sees it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.xrootd import cli
from tests.support.xrootd_fixtures import XRootDStack

pytestmark = pytest.mark.integration


def wait_for(
    condition: Callable[[], dict[str, Any]], key: str, value: bool, deadline_seconds: float
) -> dict[str, Any]:
    """Poll ``query prepare`` until ``key`` has ``value``; fail with the last answer."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        answer = condition()
        if answer[key] is value or time.monotonic() > deadline:
            assert answer[key] is value, answer
            return answer
        time.sleep(0.2)


def test_written_file_migrates_then_leaves_the_buffer_then_stages_back(
    xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    delays = xrootd_stack.tape_delays
    path = f"{xrootd_test_path}/scan.nxs"
    local = tmp_path / "scan.nxs"
    local.write_bytes(b"tape me" * 1000)

    started = time.monotonic()
    cli.upload(local, xrootd_stack.url("tape", path))
    first = cli.query_prepare(xrootd_stack.tape, "none", path)
    answered_after = time.monotonic() - started

    assert first["path_exists"] is True and first["online"] is True
    assert first["requested"] is False and first["has_reqid"] is False
    if answered_after < delays.migration:  # only in the disk buffer so far
        assert first["on_tape"] is False

    def state() -> dict[str, Any]:
        return cli.query_prepare(xrootd_stack.tape, "none", path)

    migrated = wait_for(state, "on_tape", True, delays.migration + 5)
    assert migrated["path_exists"] is True

    evicted = wait_for(state, "online", False, delays.migration + delays.eviction + 5)
    assert evicted["on_tape"] is True

    request_id = cli.stage(xrootd_stack.tape, path)
    staged_at = time.monotonic()
    assert request_id

    def staged_state() -> dict[str, Any]:
        return cli.query_prepare(xrootd_stack.tape, request_id, path)

    # The plugin records the request asynchronously, within moments of the answer.
    requested = wait_for(staged_state, "has_reqid", True, 5)
    assert requested["requested"] is True and requested["req_time"]
    if time.monotonic() - staged_at < delays.stage:
        assert requested["online"] is False

    online = wait_for(staged_state, "online", True, delays.stage + 5)
    assert online["on_tape"] is True
    # Staged files stay online (the emulated pin has no lifetime). A file written now leaves
    # the disk buffer after the migration and eviction delays: once it has, an eviction
    # clock started by the stage would have run out too.
    control = f"{xrootd_test_path}/control.nxs"
    cli.upload(local, xrootd_stack.url("tape", control))

    def control_state() -> dict[str, Any]:
        return cli.query_prepare(xrootd_stack.tape, "none", control)

    wait_for(control_state, "online", False, delays.migration + delays.eviction + 5)
    assert staged_state()["online"] is True


def test_missing_file_is_reported_not_existing(
    xrootd_stack: XRootDStack, xrootd_test_path: str
) -> None:
    answer = cli.query_prepare(xrootd_stack.tape, "none", f"{xrootd_test_path}/absent.nxs")

    assert answer["path_exists"] is False
    assert answer["on_tape"] is False and answer["online"] is False
    assert answer["error_text"]


def test_evict_takes_a_migrated_file_offline(
    xrootd_stack: XRootDStack, xrootd_test_path: str, tmp_path: Path
) -> None:
    delays = xrootd_stack.tape_delays
    path = f"{xrootd_test_path}/evict.nxs"
    local = tmp_path / "evict.nxs"
    local.write_bytes(b"x" * 100)
    cli.upload(local, xrootd_stack.url("tape", path))

    def state() -> dict[str, Any]:
        return cli.query_prepare(xrootd_stack.tape, "none", path)

    wait_for(state, "on_tape", True, delays.migration + 5)
    cli.run("xrdfs", xrootd_stack.tape, "prepare", "-e", path)

    assert wait_for(state, "online", False, 5)["on_tape"] is True
