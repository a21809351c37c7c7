"""What test sessions leave behind, and when it goes.

Working folders of session fixtures (configs, logs, SQLite files of emulators and stacks) live
under pytest's temporary folder (``tmp_path_factory``), which pytest itself prunes to the last
three runs. A session whose tests all passed removes them as its fixtures end, once their
processes have stopped (:func:`discard_unless_failed`); after a failure they stay, logs
included, for a look.

Files written to the shared local XRootD servers land in ``var/xrootd/<server>/data``. A test
names each folder it writes there with :func:`remove_after_session`; the ``xrootd_stack``
fixture removes them all from the three servers (and the tape emulation's records of their
files) when the session ends, after everything that used the servers has stopped. Only
those: other sessions and ``make demo`` use the same servers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest


def discard_unless_failed(session: pytest.Session, *folders: Path) -> None:
    """Remove ``folders`` unless a test of this session failed (call once processes using
    them have stopped)."""
    if session.testsfailed:
        return
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


SERVERS = ("idc", "udc", "tape")
_REMOVE_AFTER_SESSION: set[str] = set()


def remove_after_session(path: str) -> None:
    """Have the folder ``path`` (``/tests/x-1a2b``, on any of the servers) removed from the
    servers' data folders when the test session ends."""
    relative = path.strip("/")
    if not relative or {"", ".", ".."} & set(relative.split("/")):
        raise ValueError(f"not a folder below a server's root: {path!r}")
    _REMOVE_AFTER_SESSION.add(relative)


def remove_session_paths(var_dir: Path) -> None:
    """Remove every folder named by :func:`remove_after_session` from the three servers."""
    base = var_dir / "xrootd"
    folders = sorted(_REMOVE_AFTER_SESSION)
    _forget_tape_records(base / "tape", folders)
    for relative in folders:
        for server in SERVERS:
            target = base / server / "data" / relative
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists() or target.is_symlink():
                target.unlink(missing_ok=True)
    _REMOVE_AFTER_SESSION.clear()


def _forget_tape_records(tape_dir: Path, folders: list[str]) -> None:
    """Drop the tape emulation's records of files in ``folders``: stage requests, and the
    staged/evicted markers kept by sha1 of the logical path (see
    deploy/local/xrootd/tape-prepare.py, which keeps them in ``prepare/``)."""
    state, data = tape_dir / "prepare", tape_dir / "data"
    if not folders or not state.is_dir():
        return
    prefixes = tuple(f"/{folder}/" for folder in folders)

    def ours(path: str) -> bool:
        return (path + "/").startswith(prefixes)

    logical: set[str] = set()
    for folder in folders:
        target = data / folder
        if target.is_file():
            logical.add(f"/{folder}")
        elif target.is_dir():
            logical.update(
                "/" + file.relative_to(data).as_posix()
                for file in target.rglob("*")
                if not file.is_dir()
            )
    for request in (state / "requests").glob("*.json"):
        try:
            paths = json.loads(request.read_text()).get("paths") or []
        except (OSError, ValueError):
            continue
        named = {"/" + str(p).split("?", 1)[0].lstrip("/") for p in paths}
        if named and all(ours(path) for path in named):
            logical.update(named)  # staged files that never existed have markers too
            request.unlink(missing_ok=True)
    for path in logical:
        digest = hashlib.sha1(path.encode()).hexdigest()
        for kind in ("staged", "evicted"):
            (state / kind / f"{digest}.json").unlink(missing_ok=True)
