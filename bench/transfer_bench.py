"""Benchmark: archiving 4 x 250 MB through the FTS3 emulator vs raw ``xrdcp --tpc only``.

Many small files (``--small-files``, default 1000 x 64 KiB, idc -> tape) are measured in the
same run: one emulator job (verify_checksum=both, archive_timeout) until every file is
ARCHIVING (copy phase) and FINISHED, side by side with the same copies made by XRootD's own
``CopyProcess`` with as many parallel jobs as the emulator's concurrency (two-party, and a
sample third-party with ``thirdparty='only'``).

Both move the same files idc -> tape in the same run, four copies at a time. The emulator job
is what the Datastore submits (verify_checksum=both, archive_timeout); its copy phase ends when
every file has left ACTIVE (ARCHIVING: bytes on the tape server, checksums verified), the
tape-migration wait after that is the tape emulation's, not transfer throughput, and is reported
separately. Also measures status queries per second (keep-alive and one TLS handshake per call,
as the official client does). Writes bench/results/transfer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
IDC, TAPE = "root://127.0.0.1:11094", "root://127.0.0.1:11096"
MB = 1_000_000
EMULATOR_CONCURRENCY = 8  # the emulator's default; the 4-file jobs still run four at a time
TPC_SAMPLE = 32  # raw third-party copies of small files measured (each takes >= 2.5 s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=900).stdout


def start_emulator(work: Path, certs: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTS3_EMULATOR_")}
    env.update(
        FTS3_EMULATOR_PORT=str(port),
        FTS3_EMULATOR_DB_PATH=str(work / "fts3.sqlite"),
        FTS3_EMULATOR_CERT=str(certs / "hostcert.pem"),
        FTS3_EMULATOR_KEY=str(certs / "hostkey.pem"),
        FTS3_EMULATOR_CA=str(certs / "ca.pem"),
        FTS3_EMULATOR_CONCURRENCY=str(EMULATOR_CONCURRENCY),
        FTS3_EMULATOR_POLL_INTERVAL="0.2",
        FTS3_EMULATOR_LOG_LEVEL="warning",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "fts3_emulator", "--config", str(work / "none.yaml")],
        env=env,
        cwd=REPO,
        stdout=(work / "emulator.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process


def tls_context(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "usercert.pem"), str(certs / "userkey.pem"))
    return context


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if process.poll() is not None:
            raise SystemExit("emulator exited during start-up")
        try:
            if client.get("/").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("emulator not ready")


def delegate(url: str, certs: Path) -> None:
    from fts3.rest.client import easy as fts3

    ctx = fts3.Context(
        url,
        ucert=str(certs / "usercert.pem"),
        ukey=str(certs / "userkey.pem"),
        capath=str(certs / "ca.pem"),
    )
    fts3.delegate(ctx)


def raw_copies(sources: list[str], destinations: list[str]) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(len(sources)) as pool:
        list(
            pool.map(
                lambda pair: run("xrdcp", "--tpc", "only", "--silent", "--force", *pair),
                zip(sources, destinations, strict=True),
            )
        )
    return time.monotonic() - started


def emulator_job(
    client: httpx.Client,
    sources: list[str],
    destinations: list[str],
    checksum: str,
    *,
    verify: str,
    archive: bool,
) -> dict[str, float]:
    params = {"verify_checksum": verify, "retry": -1}
    if archive:
        params["archive_timeout"] = 600
    files = [
        {"sources": [s], "destinations": [d], "checksum": f"adler32:{checksum}"}
        for s, d in zip(sources, destinations, strict=True)
    ]
    started = time.monotonic()
    job_id = client.post("/jobs", json={"files": files, "params": params}).json()["job_id"]
    copied_at = None
    while True:
        job = client.get(f"/jobs/{job_id}", params={"files": "file_state,reason"}).json()
        states = [f["file_state"] for f in job["files"]]
        if copied_at is None and all(s in {"ARCHIVING", "FINISHED"} for s in states):
            copied_at = time.monotonic()
        if job["job_state"] in {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}:
            break
        time.sleep(0.05)
    if job["job_state"] != "FINISHED":
        raise SystemExit(f"benchmark job ended {job['job_state']}: {job['files']}")
    return {
        "copy_seconds": (copied_at or time.monotonic()) - started,
        "total_seconds": time.monotonic() - started,
    }


def copy_process(pairs: list[tuple[str, str]], *, parallel: int, thirdparty: str) -> float:
    from XRootD import client as xrd

    process = xrd.CopyProcess()
    for source, destination in pairs:
        process.add_job(source, destination, force=True, mkdir=True, thirdparty=thirdparty)
    process.parallel(parallel)
    started = time.monotonic()
    if not process.prepare().ok:
        raise SystemExit("CopyProcess.prepare failed")
    status, results = process.run()
    if not status.ok or not all(r["status"].ok for r in results):
        raise SystemExit(f"CopyProcess failed: {status}")
    return time.monotonic() - started


def small_files(
    client: httpx.Client, folder: str, count: int, size: int, work: Path
) -> tuple[dict[str, float], list[str], list[str]]:
    """Upload ``count`` random files; copy them raw (CopyProcess) and through the emulator."""
    sources = [f"{IDC}/{folder}/small/src/d{i // 250}/f{i:05d}.dat" for i in range(count)]
    local_dir = work / "small"
    local_dir.mkdir()
    checksums = []
    for index in range(count):
        data = os.urandom(size)
        (local_dir / f"f{index}").write_bytes(data)
        checksums.append(f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
    copy_process(
        [(str(local_dir / f"f{i}"), url) for i, url in enumerate(sources)],
        parallel=8,
        thirdparty="none",
    )
    raw_dst = [f"{TAPE}/{folder}/small/raw/d{i // 250}/f{i:05d}.dat" for i in range(count)]
    tpc_dst = [f"{TAPE}/{folder}/small/tpc/f{i:05d}.dat" for i in range(min(TPC_SAMPLE, count))]
    fts_dst = [f"{TAPE}/{folder}/small/fts/d{i // 250}/f{i:05d}.dat" for i in range(count)]
    raw = copy_process(
        list(zip(sources, raw_dst, strict=True)), parallel=EMULATOR_CONCURRENCY, thirdparty="none"
    )
    tpc = copy_process(
        list(zip(sources, tpc_dst, strict=False)), parallel=EMULATOR_CONCURRENCY, thirdparty="only"
    )
    started = time.monotonic()
    job_id = client.post(
        "/jobs",
        json={
            "files": [
                {"sources": [s], "destinations": [d], "checksum": f"adler32:{c}"}
                for s, d, c in zip(sources, fts_dst, checksums, strict=True)
            ],
            "params": {"verify_checksum": "both", "archive_timeout": 900, "retry": -1},
        },
    ).json()["job_id"]
    copied_at = None
    while True:
        job = client.get(f"/jobs/{job_id}", params={"files": "file_state"}).json()
        states = [f["file_state"] for f in job["files"]]
        if copied_at is None and all(s in {"ARCHIVING", "FINISHED"} for s in states):
            copied_at = time.monotonic()
        if job["job_state"] in {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}:
            break
        time.sleep(0.5)
    total = time.monotonic() - started
    if job["job_state"] != "FINISHED":
        raise SystemExit(f"small-files job ended {job['job_state']}")
    copy = (copied_at or time.monotonic()) - started
    figures = {
        "files": count,
        "file_size_kib": size // 1024,
        "raw_copyprocess_two_party_seconds": round(raw, 2),
        "raw_copyprocess_two_party_files_per_s": round(count / raw, 1),
        "raw_copyprocess_tpc_sample_files": len(tpc_dst),
        "raw_copyprocess_tpc_files_per_s": round(len(tpc_dst) / tpc, 2),
        "emulator_copy_phase_seconds": round(copy, 2),
        "emulator_files_per_s_copy_phase": round(count / copy, 1),
        "emulator_seconds_until_all_finished_incl_tape_migration": round(total, 2),
    }
    return figures, sources, raw_dst + tpc_dst + fts_dst


def status_rate(
    url: str, certs: Path, job_ids: list[str], *, keep_alive: bool, seconds: float
) -> float:
    context = tls_context(certs)
    count, deadline = 0, time.monotonic() + seconds
    client = httpx.Client(base_url=url, verify=context)
    try:
        while time.monotonic() < deadline:
            if not keep_alive:
                client.close()
                client = httpx.Client(base_url=url, verify=context)
            response = client.get(f"/jobs/{job_ids[count % len(job_ids)]}")
            response.raise_for_status()
            count += 1
    finally:
        client.close()
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/transfer.json")
    parser.add_argument("--size-mb", type=int, default=250)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--small-size-kib", type=int, default=64)
    parser.add_argument(
        "--skip-large",
        action="store_true",
        help="only the small-files figures (printed, results file untouched)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fts3-bench-"))
    run("bash", str(REPO / "deploy/local/certs.sh"))
    certs = REPO / "var" / "certs"
    if os.environ.get("DATASTORE_VAR"):
        certs = Path(os.environ["DATASTORE_VAR"]) / "certs"
    folder = f"/bench-transfer/{uuid.uuid4().hex[:10]}"
    payload = work / "payload.bin"
    with payload.open("wb") as handle:
        block = os.urandom(MB)
        for index in range(args.size_mb):
            handle.write(block[index % 7 :] + block[: index % 7])
    sources = [f"{IDC}/{folder}/src/file_{i:04d}.nxs" for i in range(args.files)]
    if args.skip_large:
        args.rounds, sources = 0, sources[:1]
    for url in sources:
        run("xrdcp", "--silent", "--force", str(payload), url)
    payload.unlink()
    checksum = run("xrdfs", IDC, "query", "checksum", sources[0].split("11094/", 1)[1]).split()[1]

    port = free_port()
    url = f"https://127.0.0.1:{port}"
    process = start_emulator(work, certs, port)
    written: list[str] = []
    total_mb = args.size_mb * args.files * MB / 1e6
    results: dict[str, list[float]] = {
        "raw": [],
        "emulator": [],
        "emulator_nocheck": [],
        "emulator_total": [],
    }
    try:
        client = httpx.Client(base_url=url, verify=tls_context(certs), timeout=60)
        wait_ready(client, process)
        delegate(url, certs)
        job_ids = []
        for round_index in range(args.rounds):
            tag = f"r{round_index}"
            targets = {
                kind: [f"{TAPE}/{folder}/{kind}-{tag}/{Path(s).name}" for s in sources]
                for kind in ("raw", "fts", "nock")
            }
            written.extend(url for urls in targets.values() for url in urls)
            run("xrdfs", TAPE, "mkdir", "-p", f"{folder}/raw-{tag}")
            raw = raw_copies(sources, targets["raw"])
            results["raw"].append(total_mb / raw)
            timing = emulator_job(
                client, sources, targets["fts"], checksum, verify="both", archive=True
            )
            results["emulator"].append(total_mb / timing["copy_seconds"])
            results["emulator_total"].append(timing["total_seconds"])
            timing = emulator_job(
                client, sources, targets["nock"], checksum, verify="none", archive=False
            )
            results["emulator_nocheck"].append(total_mb / timing["copy_seconds"])
            print(
                f"round {round_index}: raw {results['raw'][-1]:.0f} MB/s, emulator "
                f"{results['emulator'][-1]:.0f} MB/s (checksums), "
                f"{results['emulator_nocheck'][-1]:.0f} MB/s (no checksums)",
                flush=True,
            )
        small: dict[str, float] = {}
        if args.small_files:
            small, small_sources, small_written = small_files(
                client, folder, args.small_files, args.small_size_kib * 1024, work
            )
            sources = sources + small_sources
            written.extend(small_written)
            print(f"small files: {json.dumps(small)}", flush=True)
            if args.skip_large:
                return
        # 100 quick jobs (missing sources fail at once) for the status-query measurements.
        job_ids = [
            client.post(
                "/jobs",
                json={
                    "files": [
                        {
                            "sources": [f"{IDC}/{folder}/missing/{i}"],
                            "destinations": [f"{TAPE}/{folder}/missing/{i}"],
                        }
                    ],
                    "params": {"retry": -1},
                },
            ).json()["job_id"]
            for i in range(100)
        ]
        keep_alive_rate = status_rate(url, certs, job_ids, keep_alive=True, seconds=5)
        handshake_rate = status_rate(url, certs, job_ids, keep_alive=False, seconds=5)
        started = time.monotonic()
        bulk_count = 0
        while time.monotonic() - started < 5:
            client.get(f"/jobs/{','.join(job_ids)}", params={"files": "file_state"})
            bulk_count += 1
        bulk_rate = bulk_count / (time.monotonic() - started)
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        for server, urls in ((IDC, sources), (TAPE, written)):
            paths = [u.split("//", 2)[2] for u in urls]
            for start in range(0, len(paths), 200):
                batch = ["/" + p for p in paths[start : start + 200]]
                subprocess.run(["xrdfs", server, "rm", *batch], capture_output=True, timeout=120)

    raw_mbps = statistics.median(results["raw"])
    emu_mbps = statistics.median(results["emulator"])
    nocheck_mbps = statistics.median(results["emulator_nocheck"])
    report = {
        "benchmark": "transfer",
        "description": __doc__.strip().splitlines()[0],
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "files": args.files,
        "file_size_mb": args.size_mb,
        "rounds": args.rounds,
        "raw_tpc_mb_per_s": round(raw_mbps, 1),
        "emulator_mb_per_s": round(emu_mbps, 1),
        "ratio": round(emu_mbps / raw_mbps, 3),
        "goal_ratio": 0.8,
        "emulator_no_checksum_mb_per_s": round(nocheck_mbps, 1),
        "ratio_no_checksum": round(nocheck_mbps / raw_mbps, 3),
        "emulator_job_seconds_until_finished_incl_tape_migration": [
            round(t, 2) for t in results["emulator_total"]
        ],
        "per_round": {k: [round(v, 1) for v in values] for k, values in results.items()},
        "status_queries_per_s_keep_alive": round(keep_alive_rate, 1),
        "status_queries_per_s_new_tls_connection": round(handshake_rate, 1),
        "bulk_status_queries_per_s": round(bulk_rate, 1),
        "bulk_status_ids_per_query": len(job_ids),
        "emulator_concurrency": EMULATOR_CONCURRENCY,
        "small_files": small,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
