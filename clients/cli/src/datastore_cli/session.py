"""Where the command keeps the gateway's URL and the caller's session between runs.

``datastore login`` writes ``session.json`` in the user's config directory (typer's
``get_app_dir``: ``~/.config/datastore`` on Linux), readable by its owner only (0600): the
session id is as good as the password for its lifetime. ``DATASTORE_URL`` and
``DATASTORE_SESSION`` override what the file holds, for scripts and CI.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import typer

APP_NAME = "datastore"
DEFAULT_URL = "http://127.0.0.1:8000"
SESSION_FILE = "session.json"
URL_VARIABLE = "DATASTORE_URL"
SESSION_VARIABLE = "DATASTORE_SESSION"


@dataclass(frozen=True)
class Saved:
    """The gateway to talk to and the session to talk with (``None``: not logged in)."""

    url: str
    session: str | None


def config_dir() -> Path:
    return Path(typer.get_app_dir(APP_NAME))


def load(directory: Path) -> Saved:
    """What ``login`` saved, overridden by the environment; the default URL else."""
    stored: dict[str, str] = {}
    path = directory / SESSION_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
    url = os.environ.get(URL_VARIABLE) or stored.get("url") or DEFAULT_URL
    session = os.environ.get(SESSION_VARIABLE) or stored.get("session")
    return Saved(url=url.rstrip("/"), session=session)


def save(directory: Path, saved: Saved) -> Path:
    """Write the session file, created 0600 so that it is never readable by others."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / SESSION_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file may have had looser rights
    with os.fdopen(descriptor, "w") as out:
        json.dump({"url": saved.url, "session": saved.session}, out)
    return path
