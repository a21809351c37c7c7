"""The gateway's page (/ui) in a real browser: Debian's Chromium driven by playwright.

``make setup`` installs ``chromium``; playwright drives that one (no browser is downloaded),
and a test that needs it fails loudly when it is missing (``require_chromium``). ``page_in``
opens a laptop-sized page, collects the page's script errors and saves screenshots under a
folder of ``var/screenshots/`` (test artifacts).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import playwright.sync_api as playwright
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def require_chromium() -> str:
    """Chromium's path; a missing browser fails the test, it is never skipped."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run make setup (apt-get install chromium)")
    return CHROMIUM


@dataclass
class BrowserPage:
    page: playwright.Page
    screenshots: Path
    #: Uncaught errors of the page's scripts: a test asserts there were none.
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        """Save the whole page as ``<name>.png``; its path."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def log_in(self, auth: str, username: str, password: str) -> None:
        """Fill in the login form (labels name every field) and send it."""
        self.page.get_by_label("Authenticator").fill(auth)
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()


@contextmanager
def page_in(screenshots: Path, wait_ms: int) -> Iterator[BrowserPage]:
    """A Chromium page, 1280x800, whose ``expect`` waits up to ``wait_ms``; screenshots go to
    ``screenshots`` (created). The browser closes at the end."""
    executable = require_chromium()
    screenshots.mkdir(parents=True, exist_ok=True)
    playwright.expect.set_options(timeout=wait_ms)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            opened = BrowserPage(page, screenshots)

            def on_error(error: Exception) -> None:
                opened.errors.append(str(error))

            page.on("pageerror", on_error)
            yield opened
        finally:
            browser.close()
