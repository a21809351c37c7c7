"""Helpers for the FTS3 emulator tests: files on the real XRootD servers, job polling."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from fts3.rest.client import easy as fts3

from tests.support.fts3_fixtures import Fts3Emulator
from tests.support.workdirs import remove_after_session

TERMINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}


def unique_dir(prefix: str = "fts3-emulator-tests") -> str:
    folder = f"/{prefix}/{uuid.uuid4().hex[:12]}"
    remove_after_session(folder)
    return folder


def put_random_file(url: str, size: int) -> str:
    """Upload ``size`` random bytes to ``url`` (``root://host:port//path``); returns adler32."""
    with tempfile.NamedTemporaryFile(delete=False) as handle:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 << 20))
            handle.write(chunk)
            remaining -= len(chunk)
        local = handle.name
    try:
        subprocess.run(
            ["xrdcp", "--silent", "--force", local, url],
            check=True,
            capture_output=True,
            timeout=300,
        )
    finally:
        os.unlink(local)
    return adler32(url)


def split(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}", "/" + path.lstrip("/")


def adler32(url: str) -> str:
    server, path = split(url)
    out = subprocess.run(
        ["xrdfs", server, "query", "checksum", path],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    algorithm, _, value = out.strip().partition(" ")
    assert algorithm == "adler32", out
    return value.strip().lower().zfill(8)


def exists(url: str) -> bool:
    server, path = split(url)
    return (
        subprocess.run(["xrdfs", server, "stat", path], capture_output=True, timeout=60).returncode
        == 0
    )


def official_context(emulator: Fts3Emulator, *, token: str | None = None) -> fts3.Context:
    if token:
        return fts3.Context(
            emulator.url, fts_access_token=token, capath=str(emulator.ca), verify=True
        )
    return fts3.Context(
        emulator.url,
        ucert=str(emulator.user_cert),
        ukey=str(emulator.user_key),
        capath=str(emulator.ca),
        verify=True,
    )


def wait_for_job(
    ctx: fts3.Context,
    job_id: str,
    *,
    timeout: float = 120,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Poll until the job is terminal (or ``until`` holds); returns the job and every job state
    seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = fts3.get_job_status(ctx, job_id, list_files=True)
        if not seen or seen[-1] != job["job_state"]:
            seen.append(job["job_state"])
        if until(job) if until else job["job_state"] in TERMINAL:
            return job, seen
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} still {job['job_state']} (seen {seen}): "
                f"{[(f['file_state'], f['reason']) for f in job['files']]}"
            )
        time.sleep(0.1)
