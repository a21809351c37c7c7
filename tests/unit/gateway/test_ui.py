"""GET /ui: the web page is served without a session, is labelled for assistive technology,
calls only routes the gateway has, and its logic (logic.js) does what it says, run under node
(no browser)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from typing import Any

import pytest
from starlette.routing import Match

from datastore_gateway.api.routes.ui import UI_DIR, UI_FILES
from datastore_gateway.middleware import PUBLIC_PATHS
from tests.unit.gateway.conftest import Gateway


class _Form(HTMLParser):
    """Each input's id and each label's ``for``, and the scripts the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[str] = []
        self.labelled: set[str] = set()
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "textarea"):
            self.inputs.append(found.get("id") or "")
        elif tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        elif tag == "script" and found.get("src"):
            self.scripts.append(found["src"] or "")


def test_the_page_and_its_files_are_served_without_a_session(gateway: Gateway) -> None:
    for path, (_, media_type) in UI_FILES.items():
        answer = gateway.client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == media_type
    assert set(UI_FILES) <= PUBLIC_PATHS
    # Only the files named: nothing else under /ui, and the API still wants its session.
    assert gateway.client.get("/ui/main.py").status_code == 404
    assert gateway.client.get("/ui/../api/routes/ui.py").status_code == 404
    assert gateway.client.get("/requests").status_code == 401


def test_every_input_has_a_label_and_every_script_is_served(gateway: Gateway) -> None:
    page = _Form()
    page.feed(gateway.client.get("/ui").text)
    assert "archive-body" in page.inputs  # text areas count too
    assert page.inputs and set(page.inputs) <= page.labelled
    assert page.scripts == ["/ui/logic.js", "/ui/app.js"]
    assert all(script in UI_FILES for script in page.scripts)


def test_the_page_is_not_in_the_openapi_document(gateway: Gateway) -> None:
    paths = gateway.client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


#: api("METHOD", `/path/${...}?query`) in app.js.
_CALL = re.compile(r'api\("(GET|POST|DELETE|PUT)", [`"]([^`"?]+)')


def test_the_script_calls_only_routes_the_gateway_has(gateway: Gateway) -> None:
    calls = _CALL.findall((UI_DIR / "app.js").read_text())
    assert len(calls) >= 8  # the pattern still finds them
    for method, template in calls:
        path = re.sub(r"\$\{[^}]*\}", "1", template)
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path}
        matches = [route.matches(scope)[0] for route in gateway.app.routes]
        assert Match.FULL in matches, f"{method} {template}: no such route in the gateway"


_NODE_CHECKS = """
const L = require(process.argv[1]);
const job = (done, failed, total, bytesDone, bytesTotal) => ({
  files_done: done, files_failed: failed, files_total: total,
  bytes_done: bytesDone, bytes_total: bytesTotal,
});
const active = { kind: "restore", state: "ACTIVE", failure: null, waiting_on: "the copy",
                 jobs: [job(1, 1, 4, 10, 40), job(0, 0, 4, 0, 40)] };
const failed = { kind: "archive", state: "FAILED", jobs: [], waiting_on: null,
                 failure: { class: "user", reason: "source missing" } };
console.log(JSON.stringify({
  progress: L.progressOf(active),
  emptyEnded: L.progressOf(failed).percent,
  explainActive: L.explain(active),
  explainFailed: L.explain(failed),
  cancelActiveRestore: L.canCancel(active),
  cancelArchive: L.canCancel({ ...active, kind: "archive" }),
  cancelEnded: L.canCancel({ ...active, state: "FINISHED" }),
  retry: [L.canRetry("archive", "FINISHEDDIRTY"), L.canRetry("archive", "ACTIVE"),
          L.canRetry("restore", "FAILED")],
  split: [L.splitInvestigation(" ABC-123-1 "), L.splitInvestigation("ABC123"),
          L.splitInvestigation("ABC123-")],
  bytes: [L.formatBytes(12), L.formatBytes(250000000), L.formatBytes(1500000000)],
  ages: [L.formatAge(5.4), L.formatAge(125), L.formatAge(3 * 3600 + 300),
         L.formatAge(3 * 86400 + 7200), L.formatAge(-3)],
  counts: [L.countOf(null), L.countOf(0), L.countOf(7)],
  archive: [L.parseArchiveBody('{"investigations": [{"datasets": [{"datafiles": [{}, {}]}, {}]}]}'),
            L.parseArchiveBody("{nope"), L.parseArchiveBody('{"investigations": []}'),
            L.parseArchiveBody("[1]"), L.parseArchiveBody("null")],
  reasons: [L.reasonOf(409, { detail: "ended" }),
            L.reasonOf(422, { detail: [], reason: "body.x: bad" }), L.reasonOf(502, null)],
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_logic_under_node() -> None:
    node = shutil.which("node")
    assert node is not None
    run = subprocess.run(
        [node, "-e", _NODE_CHECKS, str(UI_DIR / "logic.js")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    got = json.loads(run.stdout)
    # The page's script at least parses (it needs a DOM to run).
    subprocess.run([node, "--check", str(UI_DIR / "app.js")], check=True, timeout=30)
    assert got["progress"] == {
        "done": 1,
        "failed": 1,
        "total": 8,
        "bytesDone": 10,
        "bytesTotal": 80,
        "percent": 25,
    }
    assert got["emptyEnded"] == 100
    assert got["explainActive"] == "waiting on the copy"
    assert got["explainFailed"] == "user error: source missing"
    assert (got["cancelActiveRestore"], got["cancelArchive"], got["cancelEnded"]) == (
        True,
        False,
        False,
    )
    assert got["retry"] == [True, False, False]
    assert got["split"] == [{"name": "ABC-123", "visitId": "1"}, None, None]
    assert got["bytes"] == ["12 B", "250.0 MB", "1.5 GB"]
    assert got["ages"] == ["5 s", "2 min", "3 h 5 min", "3 d 2 h", "0 s"]
    assert got["counts"] == ["-", "0", "7"]
    good, not_json, no_investigation, a_list, null = got["archive"]
    assert good["summary"] == "1 investigation, 2 datasets, 2 datafiles"
    assert good["body"]["investigations"][0]["datasets"][1] == {}
    assert not_json["error"].startswith("the archive request is not JSON: ")
    assert "body" not in not_json
    needs = 'the archive request needs "investigations": a list of at least one investigation'
    assert [no_investigation, a_list, null] == [{"error": needs}] * 3
    assert got["reasons"] == ["ended", "body.x: bad", "HTTP 502"]
