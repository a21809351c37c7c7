"""What an e2e test does as a user would: files on the idc, HTTP to the gateway, ICAT reads."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import icat

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from tests.support.workdirs import remove_after_session


def dataset_folder(name: str, visit_id: str = "1", dataset: str = "scan_0000") -> str:
    return f"instrument/20XX/{name}-{visit_id}/scan/{dataset}"


def write_idc_files(
    idc: str, folder: str, names: list[str], size: int = 64 * 1024
) -> dict[str, str]:
    """xrdcp distinct files into the instrument data cache; returns name -> adler32 hex."""
    sums = {}
    server = idc.rstrip("/")
    # The investigation's folder (on the idc, and on the udc after a restore) goes at the end
    # of the session; the stack's tape root goes too (tests/support/stack_fixtures.py).
    remove_after_session(str(PurePosixPath(folder).parents[1]))
    subprocess.run(["xrdfs", server, "mkdir", "-p", f"/{folder}"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            data = os.urandom(size)
            path = Path(tmp) / name
            path.write_bytes(data)
            subprocess.run(
                ["xrdcp", "-f", "-s", str(path), f"{server}//{folder}/{name}"],
                check=True,
                capture_output=True,
            )
            sums[name] = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    return sums


def xrootd_adler32(server: str, path: str) -> str:
    out = subprocess.run(
        ["xrdfs", server.rstrip("/"), "query", "checksum", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[1]


def icat_root(url: str) -> Any:
    client = icat.Client(url, checkCert=False)
    client.login("simple", {"username": "root", "password": "pw"})
    return client


def archival_parameters(client: Any, name: str, visit_id: str = "1") -> dict[str, dict[str, str]]:
    """{"Dataset:<name>" | "Datafile:<name>": {parameter type name: string value}}."""
    found: dict[str, dict[str, str]] = {}
    where = f"WHERE i.name = '{name}' AND i.visitId = '{visit_id}'"
    for kind, join in (
        ("Dataset", "JOIN p.dataset e JOIN e.investigation i"),
        ("Datafile", "JOIN p.datafile e JOIN e.dataset d JOIN d.investigation i"),
    ):
        owner = kind[0].lower() + kind[1:]
        for param in client.search(
            f"SELECT p FROM {kind}Parameter p {join} {where} INCLUDE p.type, p.{owner}"
        ):
            key = f"{kind}:{getattr(param, owner).name}"
            found.setdefault(key, {})[param.type.name] = param.stringValue
    return found


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


__all__ = [
    "ARCHIVAL_FAILURE",
    "ARCHIVAL_IDS",
    "ARCHIVAL_STATE",
    "archival_parameters",
    "dataset_folder",
    "icat_root",
    "wait_for",
    "write_idc_files",
    "xrootd_adler32",
]


def login(stack: Any, auth: str = "simple", user: str = "root", pw: str = "pw") -> dict[str, str]:
    """An ICAT session through the gateway's ``/login``, as the Bearer header to send."""
    answer = httpx.post(
        f"{stack.gateway_url}/login",
        json={"auth": auth, "username": user, "password": pw},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['sessionId']}"}
