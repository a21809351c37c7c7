"""The seed workflow on the page (/ui) in Chromium, against the four services, as a person
does it: root logs in, archives the seed body loaded from a JSON file, watches the request
reach FINISHED (the page polls; it is never reloaded), finds the dataset, previews its size,
restores it and watches that restore reach FINISHED; the files are then on the user data
cache with the bytes the instrument wrote. Each page is saved under ``var/screenshots/e2e/``.

Like tests/unit/gateway/test_page_in_chromium.py (the same page on fakes) it drives Debian's
chromium with playwright and fails, never skips, when chromium is missing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import playwright.sync_api as playwright
import pytest

from tests.e2e.api_client import dataset_folder, write_idc_files, xrootd_adler32
from tests.support.browser import SCREENSHOTS as ALL_SCREENSHOTS
from tests.support.browser import BrowserPage, page_in, require_chromium
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack

pytestmark = pytest.mark.e2e

SCREENSHOTS = ALL_SCREENSHOTS / "e2e"
FILES = 3
#: One step on the page: a few of its 3 s polls on a loaded machine.
WAIT_MS = 30_000
#: An archive or a restore of the seed through ICAT, FTS and XRootD takes 10-30 s; room for a
#: busy machine and FTS retries.
TRANSFER_MS = 300_000
#: The state that opens the request's summary once it ended ("FINISHED: 3 of 3 files ...").
ENDED_SUMMARY = re.compile(r"^(FINISHED|FINISHEDDIRTY|FAILED|CANCELED):")


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    """A missing browser fails loudly: `make setup` installs Debian's chromium."""
    require_chromium()


def _accepted_request_id(browser: BrowserPage, kind: str) -> str:
    """The id of the request the gateway accepted: the page announces it and opens its page
    (``#/requests/<id>``)."""
    page = browser.page
    playwright.expect(page.locator("#message")).to_contain_text(f"{kind} accepted: request ")
    page.wait_for_url(re.compile(r"#/requests/."))
    request_id = unquote(page.url.split("#/requests/", 1)[1])
    playwright.expect(page.locator("#message")).to_contain_text(f"request {request_id}")
    return request_id


def _follow_to_finished(browser: BrowserPage, kind: str, request_id: str) -> None:
    """On the request's page, without a reload: its state moves until it ends, FINISHED with
    every file done and its one FTS job's files FINISHED."""
    page = browser.page
    expect = playwright.expect
    expect(page.locator("#request-title")).to_contain_text(f"{kind} {request_id}")
    summary = page.locator("#request-summary")
    expect(summary).to_have_text(ENDED_SUMMARY, timeout=TRANSFER_MS)
    expect(summary).to_contain_text(f"FINISHED: {FILES} of {FILES} files done, 0 failed")
    jobs = page.locator("#request-jobs")
    expect(jobs).to_contain_text(f": FINISHED, {FILES}/{FILES} files ended")
    expect(jobs.get_by_role("cell", name="FINISHED", exact=True)).to_have_count(FILES)


def _find_finished_dataset(browser: BrowserPage, investigation: str) -> playwright.Locator:
    """The dataset's row on the restore view once ICAT shows it archived (the icat-writer
    writes the state the ledger may already have: ask again until it does)."""
    page = browser.page
    rows = page.locator("#restore-rows tr")
    row = rows.filter(has_text="scan_0000")
    deadline = time.monotonic() + 2 * WAIT_MS / 1000
    while True:
        # Emptied first, so the rows read below are the answer to this search.
        page.locator("#restore-rows").evaluate("rows => rows.replaceChildren()")
        page.get_by_label("Investigation").fill(investigation)
        page.get_by_role("button", name="Find its datasets").click()
        playwright.expect(rows.first).to_be_visible()
        if (row.count() and "FINISHED" in row.inner_text()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    playwright.expect(row).to_contain_text("FINISHED")
    return row


@pytest.mark.timeout(900)
def test_root_archives_the_seed_follows_it_and_restores_it_on_the_page(
    datastore_stack: DatastoreStack, tmp_path: Path
) -> None:
    stack = datastore_stack
    settings = stack.settings
    expect = playwright.expect
    name = f"WEB{uuid.uuid4().hex[:8].upper()}"
    folder = dataset_folder(name)
    names = [f"file_{i:04d}.nxs" for i in range(FILES)]
    sums = write_idc_files(settings.instrument_data_cache, folder, names)
    body_file = tmp_path / f"{name}.json"
    body_file.write_text(json.dumps(seed_body(name, files=FILES), indent=2))

    with page_in(SCREENSHOTS, WAIT_MS) as browser:
        page = browser.page
        page.goto(f"{stack.gateway_url}/ui")
        expect(page.get_by_role("heading", name="Log in with your ICAT account")).to_be_visible()
        browser.shot("01-login")
        browser.log_in("simple", "root", "pw")
        expect(page.get_by_role("heading", name="My requests")).to_be_visible()
        expect(page.locator("#message")).to_contain_text("Logged in as simple/root")
        # Gone if the page were reloaded: everything below must arrive by the page's polling.
        page.evaluate("window.__notReloaded = true")

        # Archive: the seed body from a file, into the text area, sent.
        page.get_by_role("link", name="Archive").click()
        page.get_by_label("Load the request from a JSON file").set_input_files(body_file)
        expect(page.get_by_label("Archive request (JSON)")).to_have_value(body_file.read_text())
        browser.shot("02-archive")
        page.get_by_role("button", name="Archive", exact=True).click()
        archive_id = _accepted_request_id(browser, "Archive")
        expect(page.locator("#message")).to_contain_text(
            f"1 investigation, 1 dataset, {FILES} datafiles"
        )
        _follow_to_finished(browser, "archive", archive_id)
        browser.shot("03-archive-finished")

        # My requests shows it ended well too.
        page.get_by_role("link", name="My requests").click()
        archive_row = page.get_by_role("row").filter(has_text=archive_id)
        expect(archive_row).to_contain_text("archive")
        expect(archive_row).to_contain_text("FINISHED")
        expect(archive_row).to_contain_text(f"{FILES}/{FILES} files")
        browser.shot("04-my-requests")

        # Restore: find the dataset by its investigation, preview its size, restore it.
        page.get_by_role("link", name="Restore").click()
        dataset_row = _find_finished_dataset(browser, f"{name}-1")
        dataset_row.get_by_role("button", name="Preview size").click()
        expect(dataset_row).to_contain_text(f"{FILES} files")
        browser.shot("05-restore")
        dataset_row.get_by_role("button", name="Restore", exact=True).click()
        restore_id = _accepted_request_id(browser, "Restore")
        assert restore_id != archive_id
        _follow_to_finished(browser, "restore", restore_id)
        browser.shot("06-restore-finished")

        # Both requests, newest first, ended well; the page was never reloaded.
        page.get_by_role("link", name="My requests").click()
        restore_row = page.get_by_role("row").filter(has_text=restore_id)
        expect(restore_row).to_contain_text("restore")
        expect(restore_row).to_contain_text("FINISHED")
        expect(archive_row).to_contain_text("FINISHED")
        browser.shot("07-my-requests-both")
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        assert browser.errors == [], browser.errors

    stack.assert_running()
    # Same relative path on the user data cache, same bytes as the instrument wrote.
    for file_name, adler in sums.items():
        assert xrootd_adler32(settings.user_data_cache, f"/{folder}/{file_name}") == adler
    assert sorted(p.name for p in SCREENSHOTS.glob("0*.png"))[-1] == "07-my-requests-both.png"
