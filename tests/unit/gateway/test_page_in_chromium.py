"""The page in a real browser, as a person uses it: Debian's Chromium driven by playwright
against the gateway served by uvicorn on a free port, wired to the in-memory fakes (so it
belongs to the unit tier: no broker, ICAT or FTS; a few seconds).

Alice logs in, finds her investigation's dataset, previews its size and restores it; FTS
starts copying and the request moves on the page without a reload; she opens it, sees its
files and cancels it; once the status-poller's report of the cancel arrives, the page shows
it CANCELED. Then an admin opens the operators' view. Root archives a request body loaded
from a file (after the page refused one that is not JSON). Each page is saved as a screenshot in
``var/screenshots/page/`` (``make setup`` installs ``chromium``; playwright drives that one:
no browser is downloaded).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import playwright.sync_api as playwright
import pytest
import uvicorn

from datastore_common.messages import ArchiveRequested, FileState, TransferStatus, wrap
from datastore_common.topology import dlq_name
from datastore_gateway.ledger import Ledger
from datastore_gateway.ledger_feed import follow
from tests.support.browser import SCREENSHOTS as ALL_SCREENSHOTS
from tests.support.browser import page_in, require_chromium
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import Gateway, build_gateway
from tests.unit.gateway.test_jobs import FOLDER

T = TypeVar("T")
SCREENSHOTS = ALL_SCREENSHOTS / "page"
#: Long enough for a poll (3 s) or two on a loaded machine.
WAIT_MS = 15_000


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    """A missing browser fails loudly: `make setup` installs Debian's chromium."""
    require_chromium()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    """The gateway on fakes, served over HTTP by uvicorn in a thread."""
    gateway = build_gateway(tmp_path)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield gateway, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from the test (playwright's own loop runs in this thread)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


def _on_fts(gateway: Gateway) -> list[str]:
    """FTS takes every job the gateway published; their ids."""
    return [
        _run(gateway.transfers.submit(job))
        for published in gateway.publisher.published
        for job in getattr(published.data, "jobs", [])
    ]


def _report(gateway: Gateway, request_id: str, job_id: str) -> None:
    """What the status-poller publishes for the job as (fake) FTS has it now, applied to the
    ledger as the gateway's ledger queue would."""
    job = gateway.transfers.states[job_id]
    status = TransferStatus(
        request_id=request_id,
        kind="restore",
        job_id=job_id,
        fts_endpoint=gateway.transfers.endpoint,
        job_state=job.state,
        reason=job.reason,
        files=[
            FileState(source=f.source, destination=f.destination, state=f.state, reason=f.reason)
            for f in job.files
        ],
    )
    ledger: Ledger = gateway.app.state.gateway.ledger
    envelope = wrap(status, source="status-poller", correlation_id=request_id)
    _run(follow(envelope, ledger=ledger))


def test_a_user_restores_follows_and_cancels_then_an_admin_looks_at_operations(
    served: tuple[Gateway, str],
) -> None:
    gateway, url = served
    gateway.selections.add_dataset(
        3, 30, [f"{FOLDER}/f{i}.nxs" for i in range(2)], first_datafile_id=300,
        readers={"db/alice"},
    )  # fmt: skip
    expect = playwright.expect

    with page_in(SCREENSHOTS, WAIT_MS) as browser:
        page, shot, errors = browser.page, browser.shot, browser.errors
        # Log in with the ICAT account (labels name every field).
        page.goto(f"{url}/ui")
        page.get_by_label("Authenticator").fill("db")
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("alice-pw")
        shot("01-login")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="My requests")).to_be_visible()
        expect(page.get_by_text("No requests yet.")).to_be_visible()
        # Not an admin: no operators' view offered.
        expect(page.get_by_role("link", name="Operations")).to_be_hidden()

        # Restore: find the investigation's datasets, preview the size, restore.
        page.get_by_role("link", name="Restore").click()
        page.get_by_label("Investigation").fill("ABC123-1")
        page.get_by_role("button", name="Find its datasets").click()
        expect(page.get_by_role("cell", name="scan_0000 (id 30)")).to_be_visible()
        page.get_by_role("button", name="Preview size").click()
        expect(page.get_by_role("cell", name="2 files")).to_be_visible()
        shot("02-restore")
        page.get_by_role("button", name="Restore", exact=True).click()
        expect(page.locator("#message")).to_contain_text("Restore accepted")
        [published] = [p.data for p in gateway.publisher.published]
        request_id: str = published.request_id  # type: ignore[attr-defined]
        expect(page.locator("#request-summary")).to_contain_text("SUBMITTED")

        # FTS takes the job and copies one file of two: the list moves without a reload.
        [job_id] = _on_fts(gateway)
        page.get_by_role("link", name="My requests").click()
        row = page.get_by_role("row").filter(has_text=request_id)
        expect(row).to_contain_text("SUBMITTED")
        gateway.transfers.set_state(job_id, "ACTIVE", ["FINISHED", "ACTIVE"])
        _report(gateway, request_id, job_id)
        expect(row).to_contain_text("ACTIVE")
        expect(row).to_contain_text("1/2 files")
        expect(row).to_contain_text("waiting on the copy")
        shot("03-my-requests")

        # Open it: its datasets, its job and each file as FTS reports it.
        row.get_by_role("link", name=request_id).click()
        expect(page.locator("#request-title")).to_contain_text(request_id)
        expect(page.locator("#request-summary")).to_contain_text("1 of 2 files done")
        files = page.locator("#request-jobs")
        expect(files).to_contain_text(f"Job {job_id}: ACTIVE")
        expect(files.get_by_role("cell", name="FINISHED")).to_have_count(1)
        shot("04-request")

        # Cancel: FTS cancels what is not done; the poller's report ends it CANCELED.
        page.get_by_role("button", name="Cancel this restore").click()
        expect(page.locator("#message")).to_contain_text(f"Canceling request {request_id}")
        assert gateway.transfers.states[job_id].state == "CANCELED"
        _report(gateway, request_id, job_id)
        expect(page.locator("#request-summary")).to_contain_text("CANCELED")
        expect(page.get_by_role("button", name="Cancel this restore")).to_be_hidden()
        shot("05-canceled")

        # An admin: the operators' view, queues counted by the (fake) broker.
        gateway.queue_depths.messages.update(
            {"fts-submitter": 2, dlq_name("icat-writer.archive"): 1}
        )
        gateway.queue_depths.consumers["fts-submitter"] = 1
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Authenticator").fill("simple")
        page.get_by_label("User name").fill("root")
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("link", name="Operations").click()
        expect(page.get_by_role("heading", name="Operations")).to_be_visible()
        queue = page.get_by_role("row").filter(has_text="icat-writer.archive").first
        expect(queue).to_contain_text("1")
        expect(page.locator("#operations-summary")).to_contain_text("0 requests")
        shot("06-operations")
        assert errors == [], errors
    assert sorted(p.name for p in SCREENSHOTS.glob("0*.png"))[-1] == "06-operations.png"


def test_root_archives_a_request_body_from_a_file_after_a_refused_one(
    served: tuple[Gateway, str], tmp_path: Path
) -> None:
    gateway, url = served
    expect = playwright.expect
    body_file = tmp_path / "seed.json"
    body_file.write_text(json.dumps(seed_body("PAGE1", files=2)))

    with page_in(SCREENSHOTS, WAIT_MS) as browser:
        page = browser.page
        page.goto(f"{url}/ui")
        browser.log_in("simple", "root", "pw")
        expect(page.get_by_role("heading", name="My requests")).to_be_visible()
        page.get_by_role("link", name="Archive").click()
        expect(page.get_by_role("heading", name="Archive to tape")).to_be_visible()

        # What is not an archive request is refused on the page: nothing is sent.
        page.get_by_label("Archive request (JSON)").fill('{"investigations": [')
        page.get_by_role("button", name="Archive", exact=True).click()
        expect(page.locator("#message")).to_contain_text("the archive request is not JSON")
        assert gateway.publisher.of_type(ArchiveRequested) == []

        # The seed body, loaded from a file into the text area, is accepted.
        page.get_by_label("Load the request from a JSON file").set_input_files(body_file)
        expect(page.get_by_label("Archive request (JSON)")).to_have_value(body_file.read_text())
        expect(page.locator("#message")).to_contain_text("Loaded seed.json")
        browser.shot("10-archive")
        page.get_by_role("button", name="Archive", exact=True).click()
        expect(page.locator("#message")).to_contain_text("Archive accepted: request")
        expect(page.locator("#message")).to_contain_text("1 investigation, 1 dataset, 2 datafiles")
        [request] = gateway.publisher.of_type(ArchiveRequested)
        expect(page.locator("#request-title")).to_contain_text(f"archive {request.request_id}")
        assert [f.name for f in request.investigations[0].datasets[0].datafiles] == [
            "file_0000.nxs",
            "file_0001.nxs",
        ]
        assert browser.errors == [], browser.errors
