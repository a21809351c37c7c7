"""Benchmark the ICAT emulator through python-icat (as the services use it).

Starts a fresh emulator (temp SQLite, free port) unless --url is given, then measures:
single ``create`` per second, ``createMany`` of 1,000 datafiles (client wall time and the
server-side time from the emulator's /emulator/stats), and ``search`` per second.
Writes JSON (default bench/results/icat.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import icat

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "icat_emulator",
            "--config",
            str(REPO / "deploy/local/icat/emulator.yaml"),
            "--port",
            str(port),
            "--database",
            str(workdir / "icat.sqlite"),
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/icat/version", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("emulator did not start")


def _stats(url: str) -> dict[str, dict[str, float]]:
    with urllib.request.urlopen(f"{url}/emulator/stats", timeout=5) as resp:
        return json.loads(resp.read())


def run(url: str, n_single: int, n_many: int, n_search: int) -> dict[str, object]:
    client = icat.Client(url)
    client.login("simple", {"username": "datastore", "password": "datastore-pw"})
    tag = str(int(time.time() * 1000))
    facility = client.new("Facility", name=f"bench-{tag}")
    facility.create()
    inv_type = client.new("InvestigationType", name="bench", facility=facility)
    inv_type.create()
    ds_type = client.new("DatasetType", name="bench", facility=facility)
    ds_type.create()
    inv = client.new(
        "Investigation", name="bench", visitId="1", title="bench", facility=facility, type=inv_type
    )
    inv.create()

    started = time.perf_counter()
    for i in range(n_single):
        client.new(
            "Dataset", name=f"single-{i}", complete=False, investigation=inv, type=ds_type
        ).create()
    single_s = time.perf_counter() - started

    dataset = client.new("Dataset", name="many", complete=False, investigation=inv, type=ds_type)
    dataset.create()
    files = [
        client.new(
            "Datafile",
            name=f"file_{i:05d}.nxs",
            dataset=dataset,
            fileSize=i,
            location=f"instrument/20XX/bench/many/file_{i:05d}.nxs",
        )
        for i in range(n_many)
    ]
    started = time.perf_counter()
    ids = client.createMany(files)
    many_s = time.perf_counter() - started
    assert len(ids) == n_many
    server_many_s = _stats(url)["createMany"]["last_s"]

    started = time.perf_counter()
    for i in range(n_search):
        found = client.search(
            f"SELECT o FROM Datafile o JOIN o.dataset AS ds WHERE "
            f"ds.id = {dataset.id} AND o.name = 'file_{i % n_many:05d}.nxs' "
            "INCLUDE o.dataset"
        )
        assert len(found) == 1
    search_s = time.perf_counter() - started

    started = time.perf_counter()
    everything = client.search(f"SELECT o FROM Datafile o WHERE o.dataset.id = {dataset.id}")
    search_all_s = time.perf_counter() - started
    assert len(everything) == n_many
    client.logout()
    return {
        "single_create": {
            "count": n_single,
            "seconds": round(single_s, 4),
            "per_second": round(n_single / single_s, 1),
        },
        "create_many": {
            "datafiles": n_many,
            "client_seconds": round(many_s, 4),
            "server_seconds": round(server_many_s, 4),
            "datafiles_per_second_client": round(n_many / many_s, 1),
        },
        "search_by_key": {
            "count": n_search,
            "seconds": round(search_s, 4),
            "per_second": round(n_search / search_s, 1),
        },
        "search_1000_datafiles": {
            "client_seconds": round(search_all_s, 4),
            "server_seconds": round(_stats(url)["search"]["last_s"], 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="an already running emulator (default: start one)")
    parser.add_argument("--output", default=str(REPO / "bench/results/icat.json"))
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=500)
    args = parser.parse_args()

    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url is None:
            proc, url = start_emulator(Path(tmp))
        try:
            results = run(url, args.single, args.many, args.searches)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    report = {
        "benchmark": "icat-emulator via python-icat 1.7",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": results,
        "targets": {"create_many_1000_server_seconds_max": 1.0},
        "meets_targets": results["create_many"]["server_seconds"] < 1.0,  # type: ignore[index]
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
