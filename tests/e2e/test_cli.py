"""The seed workflow with the ``datastore`` command, as a person types it: log in at a
pseudo-terminal (the password is asked without echo), archive with --wait, look before
restoring (--dry-run), restore with --wait; the real process, its real output and exit codes.
The web page is served by the same gateway."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api_client import dataset_folder, write_idc_files, xrootd_adler32
from tests.support.factories import seed_body
from tests.support.stack_fixtures import VENV_BIN, DatastoreStack

pytestmark = pytest.mark.e2e

DATASTORE = str(VENV_BIN / "datastore")


def environment(config_home: Path) -> dict[str, str]:
    """The user's environment with a config directory of its own and no override."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATASTORE_URL", "DATASTORE_SESSION"}}
    return env | {"XDG_CONFIG_HOME": str(config_home), "COLUMNS": "200", "NO_COLOR": "1"}


def login_at_a_terminal(url: str, env: dict[str, str], password: str = "pw") -> str:
    """``datastore login`` in a pseudo-terminal, typing the password when asked; its output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [DATASTORE, "login", "--url", url, "--username", "root"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,  # the pseudo-terminal is its controlling terminal
    )
    os.close(terminal)
    seen = b""
    typed = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the process ended and closed its side
                    break
                if not chunk:
                    break
                seen += chunk
            # click writes "Password:", then getpass turns echo off (dropping what was typed
            # before) and writes " ": type only then, as a person would after the prompt.
            if not typed and b"Password: " in seen:
                os.write(controller, password.encode() + b"\n")
                typed = True
            if process.poll() is not None and not ready:
                break
        assert process.wait(timeout=30) == 0, seen.decode(errors="replace")
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return seen.decode(errors="replace")


def datastore(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DATASTORE, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(900)
def test_the_seed_workflow_with_the_command(
    datastore_stack: DatastoreStack, tmp_path: Path
) -> None:
    stack = datastore_stack
    settings = stack.settings
    env = environment(tmp_path / "config")

    shown = login_at_a_terminal(stack.gateway_url, env)
    assert f"Logged in to {stack.gateway_url} as simple/root" in shown
    assert "pw\r\n" not in shown.split("Password:", 1)[1]  # not echoed
    kept = tmp_path / "config" / "datastore" / "session.json"
    assert kept.stat().st_mode & 0o777 == 0o600

    # The seed's files on the instrument data cache, and its body in a file.
    name = f"CLI{uuid.uuid4().hex[:8].upper()}"
    names = [f"file_{i:04d}.nxs" for i in range(3)]
    sums = write_idc_files(settings.instrument_data_cache, dataset_folder(name), names)
    body = tmp_path / "seed-body.json"
    body.write_text(json.dumps(seed_body(name, files=len(names))))

    archived = datastore(env, "archive", str(body), "--wait", timeout=600)
    stack.assert_running()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    assert "accepted: request" in archived.stdout and "FINISHED" in archived.stdout
    archive_id = archived.stdout.split("accepted: request ", 1)[1].split()[0]

    preview = datastore(env, "restore", "--investigation", f"{name}-1", "--dry-run", "--json")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    [row] = json.loads(preview.stdout)
    assert (row["kind"], row["name"], row["state"]) == ("investigation", f"{name}-1", "FINISHED")
    assert (row["files"], row["restorable"]) == (len(names), True)

    restored = datastore(
        env, "restore", "--investigation", f"{name}-1", "--wait", "--json", timeout=600
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    final: dict[str, Any] = json.loads(restored.stdout)
    assert (final["kind"], final["state"]) == ("restore", "FINISHED")
    for file_name, adler in sums.items():
        path = f"/{dataset_folder(name)}/{file_name}"
        assert xrootd_adler32(settings.user_data_cache, path) == adler

    listed = datastore(env, "requests", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {archive_id, final["request_id"]} <= {
        r["request_id"] for r in json.loads(listed.stdout)["items"]
    }
    status = datastore(env, "status", archive_id)
    assert status.returncode == 0 and "FINISHED" in status.stdout


def test_refusals_are_one_line_with_the_gateways_reason(
    datastore_stack: DatastoreStack, tmp_path: Path
) -> None:
    env = environment(tmp_path / "config")
    not_logged_in = datastore(env | {"DATASTORE_URL": datastore_stack.gateway_url}, "requests")
    assert not_logged_in.returncode == 1 and "datastore login" in not_logged_in.stderr
    expired = datastore(
        env | {"DATASTORE_URL": datastore_stack.gateway_url, "DATASTORE_SESSION": "expired"},
        "requests",
    )
    assert expired.returncode == 1 and "log in again: datastore login" in expired.stderr
    login_at_a_terminal(datastore_stack.gateway_url, env)
    unknown = datastore(env, "status", "no-such-request")
    assert unknown.returncode == 1
    [line] = unknown.stderr.strip().splitlines()
    assert line.startswith("error: 404: ") and "Traceback" not in unknown.stderr


def test_the_gateway_serves_the_web_page(datastore_stack: DatastoreStack) -> None:
    page = httpx.get(f"{datastore_stack.gateway_url}/ui", timeout=30)
    assert page.status_code == 200 and "My requests" in page.text
    for asset in ("/ui/app.js", "/ui/logic.js", "/ui/style.css"):
        assert httpx.get(f"{datastore_stack.gateway_url}{asset}", timeout=30).status_code == 200
