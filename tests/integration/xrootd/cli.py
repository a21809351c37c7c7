"""The XRootD command-line clients, as FTS3 and operators use them, for the tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

# Fail fast on a refused connection instead of the client's default 5 retries 120 s apart.
_CLIENT_ENV = {**os.environ, "XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "30"}


def run(*command: str, timeout: float = 90) -> str:
    result = subprocess.run(
        command, env=_CLIENT_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} -> rc {result.returncode}: {result.stderr}")
    return result.stdout


def upload(local: Path, url: str) -> None:
    """Copy a local file to ``url``, creating missing folders (-p)."""
    run("xrdcp", "--nopbar", "-f", "-p", str(local), url)


def third_party_copy(source: str, destination: str) -> None:
    """Server-to-server copy; the bytes never pass through this process."""
    run("xrdcp", "--nopbar", "-f", "--tpc", "only", source, destination)


def stage(server: str, path: str) -> str:
    """``xrdfs prepare -s``: the request id."""
    return run("xrdfs", server, "prepare", "-s", path).strip()


def query_prepare(server: str, request_id: str, path: str) -> dict[str, Any]:
    """The single response of ``xrdfs query prepare`` for ``path``."""
    answer = json.loads(run("xrdfs", server, "query", "prepare", request_id, path))
    assert answer["request_id"] == request_id
    (response,) = answer["responses"]
    assert response["path"] == path
    return dict(response)
