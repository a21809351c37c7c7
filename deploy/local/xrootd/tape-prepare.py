#!/usr/bin/python3
"""Tape emulation behind XRootD's prepare plugin (libXrdOfsPrepGPI) on the local "tape" server.

The plugin runs ``<this> [-p N] [-w] [-C] [-n rdy|fin] -- <request-id> <action> <path>...``
with action ``stage``/``prep``/``evict``/``cancel`` (output ignored) or ``query`` (our
standard output is the answer the client receives). Runs as the server's user, with the
system python3 and the standard library only.

Per file, from its mtime (the time it was last written) and the requests we recorded:
  on_tape = now >= mtime + TAPE_MIGRATION_SECONDS
  online  = still in the disk buffer (now < mtime + migration + TAPE_EVICTION_SECONDS)
            or staged (a stage request since the last write, now >= request + TAPE_STAGE_SECONDS;
            a request made while the file was still in the buffer keeps it online).
Staged files stay online until evicted (``xrdfs prepare -e``) or rewritten.
Environment (set by deploy/local/xrootd.sh): TAPE_DATA_ROOT, TAPE_STATE_DIR and the delays.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

DATA_ROOT = Path(os.environ.get("TAPE_DATA_ROOT", "."))
STATE_DIR = Path(os.environ.get("TAPE_STATE_DIR", "./prepare"))
MIGRATION_SECONDS = float(os.environ.get("TAPE_MIGRATION_SECONDS", "3"))
EVICTION_SECONDS = float(os.environ.get("TAPE_EVICTION_SECONDS", "10"))
STAGE_SECONDS = float(os.environ.get("TAPE_STAGE_SECONDS", "3"))


def clean_path(path: str) -> str:
    """The logical path without CGI and with one leading slash."""
    return "/" + path.split("?", 1)[0].lstrip("/")


def marker_file(kind: str, path: str) -> Path:
    return STATE_DIR / kind / (hashlib.sha1(path.encode()).hexdigest() + ".json")


def read_json(file: Path) -> dict | None:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def write_json(file: Path, content: dict) -> None:
    """Atomic replace, so a concurrent query never reads half a file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, file)


def record_stage(request_id: str, paths: list[str], now: float) -> None:
    write_json(STATE_DIR / "requests" / f"{request_id}.json", {"time": now, "paths": paths})
    for path in paths:
        marker = {"path": path, "time": now, "request_id": request_id}
        write_json(marker_file("staged", path), marker)


def record_evict(paths: list[str], now: float) -> None:
    for path in paths:
        marker_file("staged", path).unlink(missing_ok=True)
        write_json(marker_file("evicted", path), {"path": path, "time": now})


def record_cancel(request_id: str) -> None:
    request = read_json(STATE_DIR / "requests" / f"{request_id}.json")
    for path in (request or {}).get("paths", []):
        staged = read_json(marker_file("staged", path))
        if staged and staged.get("request_id") == request_id:
            marker_file("staged", path).unlink(missing_ok=True)
    (STATE_DIR / "requests" / f"{request_id}.json").unlink(missing_ok=True)


def file_state(request_id: str, path: str, now: float) -> dict:
    answer = {
        "path": path,
        "path_exists": False,
        "on_tape": False,
        "online": False,
        "requested": False,
        "has_reqid": False,
        "req_time": "",
        "error_text": "",
    }
    request = read_json(STATE_DIR / "requests" / f"{request_id}.json")
    if request and path in request.get("paths", []):
        answer["has_reqid"] = True
        answer["req_time"] = str(int(request["time"]))
    try:
        status = (DATA_ROOT / path.lstrip("/")).stat()
    except FileNotFoundError:
        answer["error_text"] = "file does not exist"
        return answer
    answer["path_exists"] = True
    if os.path.isdir(DATA_ROOT / path.lstrip("/")):
        answer["online"] = True
        return answer

    written = status.st_mtime
    migrated = written + MIGRATION_SECONDS
    leaves_buffer = migrated + EVICTION_SECONDS
    evicted = read_json(marker_file("evicted", path))
    if evicted and evicted["time"] >= migrated and evicted["time"] >= written:
        leaves_buffer = min(leaves_buffer, evicted["time"])
    answer["on_tape"] = now >= migrated
    in_buffer = now < leaves_buffer

    staged = read_json(marker_file("staged", path))
    is_staged = False
    if staged and staged["time"] >= written:
        answer["requested"] = True
        if not answer["req_time"]:
            answer["req_time"] = str(int(staged["time"]))
        is_staged = staged["time"] < leaves_buffer or now >= staged["time"] + STAGE_SECONDS
    answer["online"] = in_buffer or is_staged
    return answer


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: tape-prepare [options] -- <request-id> <action> <path>...", file=sys.stderr)
        return 2
    rest = argv[argv.index("--") + 1 :]
    if len(rest) < 2:
        print("missing request id or action", file=sys.stderr)
        return 2
    request_id, action, paths = rest[0], rest[1], [clean_path(p) for p in rest[2:]]
    now = time.time()
    if action in ("stage", "prep"):
        record_stage(request_id, paths, now)
    elif action == "evict":
        record_evict(paths, now)
    elif action == "cancel":
        record_cancel(request_id)
    elif action == "query":
        responses = [file_state(request_id, path, now) for path in paths]
        # Compact: the plugin truncates answers past its ~2 KB buffer (no -maxresp in 5.5.3).
        answer = {"request_id": request_id, "responses": responses}
        print(json.dumps(answer, separators=(",", ":")))
    else:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
