"""Benchmark the XRootD adapter against the local stack (deploy/local/xrootd.sh start).

Side by side in one run, on the same files of the idc server: N stats awaited one after the
other, N stats in flight at once through the adapter (XRootD async callbacks bridged to
asyncio), and N stats in flight through ``asyncio.to_thread`` around the synchronous client
(the alternative design); the same for server-side adler32 checksums. Reports medians of
several rounds and ratios. Writes JSON (default bench/results/xrootd.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from XRootD import client as xrootd_client

from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.adapters.xrootd.urls import split_url

REPO = Path(__file__).resolve().parents[1]
IDC = f"root://127.0.0.1:{os.environ.get('XROOTD_IDC_PORT', '11094')}"


def prepare_files(count: int, size: int) -> list[str]:
    folder = f"/bench/xrootd-{uuid.uuid4().hex[:8]}"
    urls = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(count):
            local = Path(tmp) / f"f{index}"
            local.write_bytes(os.urandom(size))
            url = f"{IDC}/{folder}/f{index}"
            subprocess.run(["xrdcp", "--nopbar", "-f", "-p", str(local), url], check=True)
            urls.append(url)
    return urls


async def timed(make_work: Callable[[], Awaitable[Any]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await make_work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def run(requests: int, rounds: int) -> dict[str, Any]:
    storage = XRootDClient(timeout_seconds=30)
    files = prepare_files(10, 1_000_000)
    urls = [files[index % len(files)] for index in range(requests)]
    sync_fs = xrootd_client.FileSystem(IDC)

    def sync_stat(url: str) -> Any:
        return sync_fs.stat(split_url(url).path, timeout=30)

    def sync_checksum(url: str) -> Any:
        query_code = xrootd_client.flags.QueryCode.CHECKSUM
        return sync_fs.query(query_code, split_url(url).path, timeout=30)

    async def sequential(operation: Callable[[str], Awaitable[Any]]) -> None:
        for url in urls:
            await operation(url)

    async def concurrent(operation: Callable[[str], Awaitable[Any]]) -> None:
        await asyncio.gather(*(operation(url) for url in urls))

    async def threaded(operation: Callable[[str], Any]) -> None:
        await asyncio.gather(*(asyncio.to_thread(operation, url) for url in urls))

    await concurrent(storage.stat)  # warm the connection
    results: dict[str, Any] = {}
    for name, adapter_call, sync_call in (
        ("stat", storage.stat, sync_stat),
        ("checksum", storage.checksum, sync_checksum),
    ):
        seconds = {
            "sequential_adapter": await timed(lambda c=adapter_call: sequential(c), rounds),
            "concurrent_adapter": await timed(lambda c=adapter_call: concurrent(c), rounds),
            "concurrent_to_thread": await timed(lambda c=sync_call: threaded(c), rounds),
        }
        results[name] = {
            "requests": requests,
            "seconds_median": {key: round(value, 4) for key, value in seconds.items()},
            "per_second": {key: round(requests / value, 1) for key, value in seconds.items()},
            "speedup_concurrent_vs_sequential": round(
                seconds["sequential_adapter"] / seconds["concurrent_adapter"], 2
            ),
            "speedup_adapter_vs_to_thread": round(
                seconds["concurrent_to_thread"] / seconds["concurrent_adapter"], 2
            ),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/xrootd.json")
    arguments = parser.parse_args()
    subprocess.run(["bash", str(REPO / "deploy/local/xrootd.sh"), "start"], check=True)
    results = asyncio.run(run(arguments.requests, arguments.rounds))
    report = {
        "benchmark": "XRootD adapter: stat and adler32 checksum on the local idc server",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "files": "10 files of 1 MB, requests spread over them",
        "rounds": arguments.rounds,
        "results": results,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
