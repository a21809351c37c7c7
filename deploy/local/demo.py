"""The seed workflow on the local stack (`make demo` runs `make up` first).

Creates four files in the instrument data cache with xrdcp, logs in through the gateway, archives
them with the seed's exact JSON body, watches the archival states reach FINISHED in ICAT (printed
as a table), lists the files on the tape archive with their adler32. Then the restore half: finds
the dataset's id through the gateway, and with the `datastore` command (the user's client) shows
what would be restored (`restore --dry-run`) and restores it, following it with live progress to
FINISHED (`restore --wait`); lists the files on the user data cache with their adler32.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import icat

from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
FILE_SIZE = os.environ.get("DEMO_FILE_SIZE", "250M")
TIMEOUT = float(os.environ.get("DEMO_TIMEOUT", "300"))

SEED_BODY: dict[str, Any] = {
    "investigations": [
        {
            "facility": {"name": "facility"},
            "investigationType": {"name": "type"},
            "instrument": {"name": "instrument"},
            "facilityCycle": {"name": "20XX"},
            "datasets": [
                {
                    "name": "scan_0000",
                    "complete": True,
                    "description": "Description",
                    "doi": "10.00000/00000",
                    "location": "string",
                    "startDate": "2024-06-05T10:53:29.501Z",
                    "endDate": "2024-06-05T10:53:29.501Z",
                    "datasetType": {"name": "scan"},
                    "datafiles": [
                        {
                            "name": f"file_000{i}.nxs",
                            "description": "Description",
                            "doi": "10.00000/00000",
                            "fileSize": 0,
                            "checksum": "string",
                            "datafileCreateTime": "2024-06-05T10:53:29.501Z",
                            "datafileModTime": "2024-06-05T10:53:29.501Z",
                        }
                        for i in range(4)
                    ],
                }
            ],
            "name": "ABC123",
            "visitId": "1",
            "title": "Title",
            "summary": "Summary",
            "doi": "10.00000/00000",
            "startDate": "2024-06-05T10:53:29.501Z",
            "endDate": "2024-06-05T10:53:29.501Z",
            "releaseDate": "2024-06-05T10:53:29.501Z",
        }
    ]
}


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*command: str) -> str:
    print("$ " + " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {result.stderr.strip()}")
    if result.stdout.strip():
        print(result.stdout.rstrip(), flush=True)
    return result.stdout


def datastore(env: dict[str, str], *arguments: str) -> None:
    """Run the `datastore` command as a user would, its output (live bars) on this terminal;
    exit 0 means the request ended FINISHED (or, with --dry-run, that it can be restored)."""
    command = str(Path(sys.executable).with_name("datastore")), *arguments
    print("$ datastore " + " ".join(arguments), flush=True)
    try:
        result = subprocess.run(command, env=env, check=False, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        sys.exit(f"datastore {arguments[0]} did not end within {TIMEOUT:.0f}s")
    if result.returncode != 0:
        sys.exit(f"datastore {arguments[0]} exited {result.returncode}")


def icat_client(url: str) -> Any:
    client = icat.Client(url, checkCert=False)
    client.login("simple", {"username": "root", "password": "pw"})
    return client


def free_visit_id(client: Any) -> str:
    """The seed's visit "1" on a fresh stack; the next unused one when the demo runs again."""
    visit = 1
    while client.search(
        "SELECT d FROM Dataset d JOIN d.investigation i "
        f"WHERE i.name = 'ABC123' AND i.visitId = '{visit}'"
    ):
        visit += 1
    return str(visit)


def states(client: Any, visit_id: str) -> list[tuple[str, str, str, str, str]]:
    rows = []
    base = (
        "JOIN p.type t JOIN p.{entity} e JOIN e.{inv_path} i "
        f"WHERE i.name = 'ABC123' AND i.visitId = '{visit_id}'"
    )
    for entity, inv_path in (("dataset", "investigation"), ("datafile", "dataset.investigation")):
        kind = "Dataset" if entity == "dataset" else "Datafile"
        query = f"SELECT p FROM {kind}Parameter p " + base.format(entity=entity, inv_path=inv_path)
        found: dict[str, dict[str, str]] = {}
        for param in client.search(query + f" INCLUDE p.type, p.{entity}"):
            owner = getattr(param, entity)
            found.setdefault(owner.name, {})[param.type.name] = param.stringValue or ""
        for name in sorted(found):
            values = found[name]
            rows.append(
                (
                    kind,
                    name,
                    values.get(ARCHIVAL_STATE, "-"),
                    values.get(ARCHIVAL_IDS, "-")[:36],
                    values.get(ARCHIVAL_FAILURE, ""),
                )
            )
    return rows


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    settings = load_settings()
    gateway = f"http://{settings.gateway.host}:{settings.gateway.port}"
    idc, tape = settings.instrument_data_cache, settings.tape_archive
    client = icat_client(str(settings.icat.url).rstrip("/"))
    visit_id = free_visit_id(client)
    folder = f"instrument/20XX/ABC123-{visit_id}/scan/scan_0000"

    say(f"Create four {FILE_SIZE} files in the instrument data cache ({idc})")
    with tempfile.TemporaryDirectory() as tmp:
        tmpfile = Path(tmp) / "tmpfile"
        run("fallocate", "-l", FILE_SIZE, str(tmpfile))
        run("xrdfs", idc.rstrip("/"), "mkdir", "-p", f"/{folder}")
        for i in range(4):
            # distinct contents, so each file has its own checksum
            with tmpfile.open("r+b") as handle:
                handle.write(f"file {i} of the Datastore demo".encode())
            run("xrdcp", "-f", "-s", str(tmpfile), f"{idc}{folder}/file_000{i}.nxs")
    run("xrdfs", idc.rstrip("/"), "ls", "-l", f"/{folder}")

    say("Log in to the Datastore API (an ICAT session through the gateway)")
    http = httpx.Client(base_url=gateway, timeout=60)
    login = http.post("/login", json={"auth": "simple", "username": "root", "password": "pw"})
    login.raise_for_status()
    session_id = login.json()["sessionId"]
    print(f"POST /login -> {login.status_code}, sessionId {session_id[:8]}…")

    say("Archive: POST /archive with the seed's JSON body")
    body = copy.deepcopy(SEED_BODY)
    body["investigations"][0]["visitId"] = visit_id
    started = time.monotonic()
    answer = http.post("/archive", json=body, headers={"Authorization": f"Bearer {session_id}"})
    print(f"POST /archive -> {answer.status_code} in {time.monotonic() - started:.3f}s")
    print(json.dumps(answer.json(), indent=2))
    if answer.status_code != 202:
        sys.exit("archive request refused")

    say("Monitor: archival states in ICAT (Dataset and Datafile parameters)")
    deadline = time.monotonic() + TIMEOUT
    last: list[tuple[str, ...]] = []
    while time.monotonic() < deadline:
        rows = states(client, visit_id)
        if rows != last:
            print(f"-- after {time.monotonic() - started:.1f}s")
            print_table(rows, ("entity", "name", "Archival state", "Archival ids", "failure"))
            last = rows
        dataset_rows = [r for r in rows if r[0] == "Dataset"]
        if dataset_rows and dataset_rows[0][2] in {
            "FINISHED",
            "FAILED",
            "FINISHEDDIRTY",
            "CANCELED",
        }:
            break
        time.sleep(1)
    else:
        sys.exit(f"the dataset did not reach a final state within {TIMEOUT:.0f}s")

    say("ICAT now holds the real size and checksum of every datafile")
    datafiles = client.search(
        "SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i "
        f"WHERE i.name = 'ABC123' AND i.visitId = '{visit_id}' ORDER BY f.name"
    )
    print_table(
        [(f.name, str(f.fileSize), f.checksum or "", f.location or "") for f in datafiles],
        ("datafile", "fileSize", "checksum", "location"),
    )

    say("Verify: the files on the tape archive")
    tape_folder = f"/{settings.tape_root_dir}{folder}"
    run("xrdfs", tape.rstrip("/"), "ls", "-l", tape_folder)
    for i in range(4):
        run("xrdfs", tape.rstrip("/"), "query", "checksum", f"{tape_folder}/file_000{i}.nxs")

    final = last[0][2] if last else "?"
    say(
        f"Archived: dataset scan_0000 of ABC123-{visit_id} is {final} in ICAT "
        f"({time.monotonic() - started:.1f}s after the request)"
    )
    if final != "FINISHED":
        sys.exit(1)

    restore(http, session_id, client, settings, folder, visit_id, before=last)


def restore(
    http: httpx.Client,
    session_id: str,
    client: Any,
    settings: Any,
    folder: str,
    visit_id: str,
    *,
    before: list[tuple[str, ...]],
) -> None:
    """The seed's restore half: the dataset back from tape onto the user data cache."""
    headers = {"Authorization": f"Bearer {session_id}"}
    udc = settings.user_data_cache.rstrip("/")

    say("Restore: find the dataset's id by its name, and how its archival stands (as you)")
    query = {"investigation": f"ABC123-{visit_id}", "name": "scan_0000"}
    found = http.get("/datasets", params=query, headers=headers)
    print(f"GET /datasets?investigation=ABC123-{visit_id}&name=scan_0000 -> {found.status_code}")
    print(json.dumps(found.json(), indent=2))
    if found.status_code != 200 or len(found.json()["items"]) != 1:
        sys.exit("the gateway did not find the dataset by its name")
    dataset_id = found.json()["items"][0]["id"]
    status = http.get(f"/datasets/{dataset_id}/status", headers=headers)
    print(f"GET /datasets/{dataset_id}/status -> {status.status_code}")
    print(json.dumps(status.json(), indent=2))

    say("Restore with the datastore command: what would be restored, then restore and follow")
    body = {"investigation_ids": [], "dataset_ids": [int(dataset_id)], "datafile_ids": []}
    gateway = str(http.base_url).rstrip("/")
    as_user = {**os.environ, "DATASTORE_URL": gateway, "DATASTORE_SESSION": session_id}
    started = time.monotonic()
    datastore(as_user, "restore", "--investigation", f"ABC123-{visit_id}", "--dry-run")
    datastore(as_user, "restore", "--dataset", str(dataset_id), "--wait")

    say("Verify: the files on the user data cache")
    run("xrdfs", udc, "ls", "-l", f"/{folder}")
    for i in range(4):
        run("xrdfs", udc, "query", "checksum", f"/{folder}/file_000{i}.nxs")

    say("Restore again: every file is already on the user data cache with its checksum")
    again = http.post(
        "/restore",
        json=body,
        # A new request (the same body alone would replay the first answer for a while).
        headers={**headers, "Idempotency-Key": f"demo-restore-again-{time.time_ns()}"},
    )
    print(f"POST /restore -> {again.status_code}")
    print(json.dumps(again.json(), indent=2))
    if again.status_code != 202 or again.json()["job_ids"]:
        sys.exit("the second restore should recall nothing")
    shown = http.get(f"/requests/{again.json()['request_id']}", headers=headers).json()
    print(f"GET /requests/{again.json()['request_id']} -> state {shown['state']} (no FTS job)")

    unchanged = states(client, visit_id) == before
    say(
        f"Restored: {len(before) - 1} files of scan_0000 on the user data cache "
        f"({time.monotonic() - started:.1f}s after the request); ICAT "
        + ("unchanged, as a restore should leave it" if unchanged else "CHANGED (unexpected)")
    )
    if not unchanged:
        sys.exit(1)


if __name__ == "__main__":
    main()
