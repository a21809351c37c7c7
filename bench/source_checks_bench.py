"""Time to describe (stat + server-side adler32) the sources of a 10,000-file request.

Side by side in one run, each on its own fresh files (XRootD keeps a computed checksum in the
file's extended attributes, so a file is only ever checksummed once): the icat-writer's
``XRootDStorage.describe_many`` with its default bounds (checksums 4 at a time per
server, as an XRootD server without ``xrootd.chksum max`` allows), and the server's own rate:
bare checksum queries, 16 in flight (the local servers' ``max``), no stats. Needs the local
XRootD stack (deploy/local/xrootd.sh start). Writes JSON (default bench/results/source_checks.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.adapters.xrootd.storage import XRootDStorage

REPO = Path(__file__).resolve().parents[1]
IDC = f"root://127.0.0.1:{os.environ.get('XROOTD_IDC_PORT', '11094')}"
DATA = Path(os.environ.get("DATASTORE_VAR", REPO / "var")) / "xrootd" / "idc" / "data"


def fresh_files(count: int, size: int) -> list[str]:
    """Files written straight into the idc server's data folder (as the instrument would)."""
    folder = f"bench/sources-{uuid.uuid4().hex[:8]}"
    (DATA / folder).mkdir(parents=True)
    urls = []
    for index in range(count):
        (DATA / folder / f"file_{index:05d}.nxs").write_bytes(os.urandom(size))
        urls.append(f"{IDC}//{folder}/file_{index:05d}.nxs")
    return urls


async def ours(urls: list[str]) -> float:
    describer = XRootDStorage(XRootDClient())
    started = time.perf_counter()
    described = await describer.describe_many(urls)
    elapsed = time.perf_counter() - started
    assert all(d is not None for d in described.values())
    return elapsed


async def server_rate(urls: list[str], in_flight: int = 16) -> float:
    storage = XRootDClient(checksum_concurrency=in_flight)
    started = time.perf_counter()
    await asyncio.gather(*(storage.checksum(url) for url in urls))
    return time.perf_counter() - started


async def run(files: int, size: int, rounds: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"ours": [], "server": []}
    for round_ in range(rounds):
        order = ["ours", "server"] if round_ % 2 == 0 else ["server", "ours"]
        for side in order:
            urls = fresh_files(files, size)
            try:
                samples[side].append(await (ours(urls) if side == "ours" else server_rate(urls)))
            finally:
                shutil.rmtree(DATA / urls[0].split("//")[-1].rsplit("/", 1)[0])
    best = {side: min(values) for side, values in samples.items()}
    return {
        "benchmark": "describe the sources of one request (stat + adler32 on the idc)",
        "files": files,
        "file_bytes": size,
        "rounds": rounds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": samples,
        "ours_seconds": round(best["ours"], 3),
        "ours_files_per_second": round(files / best["ours"]),
        "server_checksums_only_seconds": round(best["server"], 3),
        "ratio_ours_to_server": round(best["server"] / best["ours"], 3),
        "note": "ours = XRootDStorage (stat + checksum, 4 checksums in flight); server = "
        "bare checksum queries, 16 in flight; best of the rounds, sides alternating first",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/source_checks.json")
    args = parser.parse_args()
    result = asyncio.run(run(args.files, args.size, args.rounds))
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))


if __name__ == "__main__":
    main()
