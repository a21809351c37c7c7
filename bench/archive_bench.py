"""Benchmark the archive path's ICAT side, and gather the archive benchmarks in one summary.

Starts a fresh ICAT emulator (temp SQLite, free port) unless --url is given, ingests the seed
(deploy/local/icat/example.yaml, python-icat's icatingest.py), then measures in one run:

* registration: the icat-writer's real ``register_archive`` handler on the real
  ``IcatCatalogue`` (fake storage describing every source, recording publisher) for one
  investigation of N datafiles (N = 1,000 and 10,000): datafiles per second, and the longest
  the event loop went unserved meanwhile (``event_loop_max_lag_ms``: ICAT calls run in
  threads, so it stays a few milliseconds);
* the baseline: plain python-icat doing the same creates (Datafiles, then their three
  archival DatafileParameters, built with ``client.new`` and sent with ``createMany``);
* status recording: ``record_transfer_status`` moving 1,000 registered files to ACTIVE, then
  FINISHED, then the same again (a redelivery), in the 1,000- and the 10,000-file dataset.

Gateway and poller figures are copied from bench/results/gateway.json and poller.json when
present (they are not re-run). Writes JSON (default bench/results/archive.json).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icat
from icat_bench import start_emulator  # bench/ scripts run with bench/ on sys.path

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
    PARAMETER_UNITS,
)
from datastore_common.domain.plan import plan_archive
from datastore_common.messages import (
    ArchiveRequested,
    FileState,
    InvestigationSpec,
    TransferStatus,
    wrap,
)
from datastore_common.ports import StoredFile
from datastore_common.settings import DatastoreSettings, IcatSettings
from datastore_common.testing.fakes import FakeStorage, RecordingPublisher
from datastore_icat_writer.handlers import record_transfer_status, register_archive

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
VO = "bench-vo"
ENDPOINT = "https://fts.bench:8446"


def _ingest_seed(url: str) -> None:
    subprocess.run(
        [
            sys.executable,
            str(Path(sys.executable).parent / "icatingest.py"),
            *("-i", str(REPO / "deploy/local/icat/example.yaml"), "-f", "YAML"),
            *("--duplicate", "IGNORE", "--url", url, "--no-check-certificate"),
            *("--auth", "simple", "--user", "root", "--pass", "pw"),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _investigation(files: int) -> InvestigationSpec:
    when = datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC)
    return InvestigationSpec.model_validate(
        {
            "facility": {"name": "facility"},
            "investigationType": {"name": "type"},
            "instrument": {"name": "instrument"},
            "facilityCycle": {"name": "20XX"},
            "name": f"BENCH-{uuid.uuid4().hex[:10]}",
            "visitId": "1",
            "title": "Title",
            "datasets": [
                {
                    "name": "scan_0000",
                    "complete": True,
                    "datasetType": {"name": "scan"},
                    "datafiles": [
                        {
                            "name": f"file_{f:05d}.nxs",
                            "description": "Description",
                            "fileSize": 0,
                            "checksum": "string",
                            "datafileCreateTime": when,
                            "datafileModTime": when,
                        }
                        for f in range(files)
                    ],
                }
            ],
        }
    )


def _settings(url: str) -> DatastoreSettings:
    return DatastoreSettings(
        icat={"url": url},  # type: ignore[arg-type]
        fts3={"endpoint": ENDPOINT, "vo": VO},  # type: ignore[arg-type]
    )


class _Writer:
    """The icat-writer's handlers on the real IcatCatalogue, fake storage and publisher."""

    def __init__(self, url: str) -> None:
        self.settings = _settings(url)
        self.catalogue = IcatCatalogue(
            IcatSettings(url=url),  # type: ignore[arg-type]
            pool=IcatClientPool(url, size=4),
        )
        self.storage = FakeStorage()
        self.publisher = RecordingPublisher()

    async def register(self, files: int) -> tuple[float, ArchiveRequested]:
        investigation = _investigation(files)
        request_id = str(uuid.uuid4())
        jobs = plan_archive(
            request_id,
            [investigation],
            instrument_data_cache=self.settings.instrument_data_cache,
            tape_archive=self.settings.tape_archive,
            tape_root_dir=self.settings.tape_root_dir,
            vo=VO,
            max_files_per_job=self.settings.fts3.max_files_per_job,
        )
        for job in jobs:
            for i, transfer in enumerate(job.transfers):
                self.storage.files[transfer.source] = StoredFile(1000 + i, f"adler32:{i:08x}")
        request = ArchiveRequested(request_id=request_id, investigations=[investigation], jobs=jobs)
        envelope = wrap(request, source="bench", correlation_id=request_id)
        started = time.perf_counter()
        await register_archive(
            envelope,
            catalogue=self.catalogue,
            storage=self.storage,
            publisher=self.publisher,
            settings=self.settings,
        )
        return time.perf_counter() - started, request

    async def record(self, request_id: str, files: int, state: str) -> float:
        """Seconds to record ``state`` for the first ``files`` registered datafiles."""
        registered = [
            p.data
            for p in self.publisher.published
            if getattr(p.data, "request_id", None) == request_id and hasattr(p.data, "jobs")
        ][-1]
        transfers = [t for job in registered.jobs for t in job.transfers][:files]  # type: ignore[attr-defined]
        status = TransferStatus(
            request_id=request_id,
            kind="archive",
            job_id=registered.jobs[0].job_id,  # type: ignore[attr-defined]
            fts_endpoint=ENDPOINT,  # type: ignore[arg-type]
            job_state=state,
            files=[
                FileState(
                    source=t.source,
                    destination=t.destination,
                    datafile_id=t.datafile_id,
                    dataset_id=t.dataset_id,
                    state=state,
                )
                for t in transfers
            ],
        )
        envelope = wrap(status, source="bench", correlation_id=request_id)
        started = time.perf_counter()
        await record_transfer_status(envelope, catalogue=self.catalogue, settings=self.settings)
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.catalogue.close()


def _baseline(url: str, files: int) -> float:
    """Plain python-icat: the same entities and parameters, objects from client.new, sent with
    createMany in chunks of 1,000 (investigation and dataset lookups excluded)."""
    client = icat.Client(url)
    client.login("simple", {"username": "datastore", "password": "datastore-pw"})
    try:
        facility = client.search("SELECT o FROM Facility o WHERE o.name = 'facility'")[0]
        inv_type = client.search("SELECT o FROM InvestigationType o WHERE o.name = 'type'")[0]
        ds_type = client.search("SELECT o FROM DatasetType o WHERE o.name = 'scan'")[0]
        types = {
            t.name: t
            for t in client.search(
                f"SELECT o FROM ParameterType o WHERE o.units = '{PARAMETER_UNITS}'"
            )
        }
        name = f"BASE-{uuid.uuid4().hex[:10]}"
        investigation = client.new(
            "Investigation", name=name, visitId="1", title="T", facility=facility, type=inv_type
        )
        investigation.create()
        dataset = client.new(
            "Dataset", name="scan_0000", complete=True, investigation=investigation, type=ds_type
        )
        dataset.create()
        when = datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC)
        started = time.perf_counter()
        for start in range(0, files, 1000):
            beans = [
                client.new(
                    "Datafile",
                    name=f"file_{i:05d}.nxs",
                    description="Description",
                    location=f"instrument/20XX/{name}-1/scan/scan_0000/file_{i:05d}.nxs",
                    fileSize=1000 + i,
                    checksum=f"adler32:{i:08x}",
                    datafileCreateTime=when,
                    datafileModTime=when,
                    dataset=dataset,
                )
                for i in range(start, min(start + 1000, files))
            ]
            ids = client.createMany(beans)
            for bean, bean_id in zip(beans, ids, strict=True):
                bean.id = bean_id
            parameters = [
                client.new("DatafileParameter", datafile=bean, type=types[p], stringValue=v)
                for bean in beans
                for p, v in (
                    (ARCHIVAL_STATE, "SUBMITTED"),
                    (ARCHIVAL_IDS, "job"),
                    (ARCHIVAL_ENDPOINT, ENDPOINT),
                )
            ]
            client.createMany(parameters)
        return time.perf_counter() - started
    finally:
        client.logout()


class _LoopLag:
    """The longest the event loop went without running a 5 ms ticker, minus those 5 ms: how
    long ICAT work kept the loop from anything else (the adapter runs it in threads)."""

    TICK = 0.005

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.TICK)
            self.worst = max(self.worst, time.perf_counter() - before - self.TICK)

    async def __aenter__(self) -> _LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _measure(url: str, sizes: list[int], status_files: int) -> dict[str, Any]:
    writer = _Writer(url)
    try:
        # Warm-up: every pooled client built, logged in, reference caches and templates
        # filled (a running icat-writer has all that after its first requests).
        _, warm = await writer.register(200)
        await writer.record(warm.request_id, 200, "ACTIVE")
        registration: dict[str, Any] = {}
        requests: dict[int, ArchiveRequested] = {}
        for files in sizes:
            async with _LoopLag() as lag:
                ours, requests[files] = await writer.register(files)
            base = await asyncio.get_running_loop().run_in_executor(None, _baseline, url, files)
            registration[str(files)] = {
                "datafiles": files,
                "icat_writer_seconds": round(ours, 3),
                "icat_writer_datafiles_per_second": round(files / ours, 1),
                "python_icat_baseline_seconds": round(base, 3),
                "python_icat_baseline_datafiles_per_second": round(files / base, 1),
                "ratio_icat_writer_over_baseline": round(base / ours, 2),
                "event_loop_max_lag_ms": round(lag.worst * 1000, 1),
            }
        status: dict[str, Any] = {}
        for files in sizes:
            request = requests[files]
            active = await writer.record(request.request_id, status_files, "ACTIVE")
            finished = await writer.record(request.request_id, status_files, "FINISHED")
            repeat = await writer.record(request.request_id, status_files, "FINISHED")
            status[f"dataset_of_{files}"] = {
                "datafiles_reported": min(status_files, files),
                "datafiles_in_dataset": files,
                "submitted_to_active_seconds": round(active, 3),
                "active_to_finished_seconds": round(finished, 3),
                "redelivered_no_change_seconds": round(repeat, 3),
            }
    finally:
        await writer.close()
    return {"registration": registration, "status_recording": status}


def _copied() -> dict[str, Any]:
    out: dict[str, Any] = {}
    gateway_path = RESULTS / "gateway.json"
    if gateway_path.exists():
        gateway = json.loads(gateway_path.read_text())
        results = gateway.get("results", {})
        accept = results.get("gateway", {}).get("accept_10k_datafiles", {})
        out["gateway"] = {
            "source": "bench/results/gateway.json",
            "date": gateway.get("date"),
            "accept_10k_datafiles_median_seconds": accept.get("median_seconds"),
            "accept_10k_datafiles_max_seconds": accept.get("max_seconds"),
            "requests_per_second_gateway_over_raw": results.get("ratios", {}).get(
                "small_requests_per_second_gateway_over_raw"
            ),
        }
    poller_path = RESULTS / "poller.json"
    if poller_path.exists():
        poller = json.loads(poller_path.read_text())
        out["poller"] = {
            "source": "bench/results/poller.json",
            "active_jobs": poller.get("active_jobs"),
            "fts_status_requests_per_cycle": poller.get("status_requests_per_cycle"),
            "goal_status_requests_per_cycle": poller.get("goal_status_requests_per_cycle"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="an already running, seeded emulator (default: start one)")
    parser.add_argument("--output", default=str(RESULTS / "archive.json"))
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--status-files", type=int, default=1000)
    parser.add_argument("--profile", help="write cProfile stats of the run to this file")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    sizes = [int(s) for s in args.sizes.split(",")]

    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url is None:
            proc, url = start_emulator(Path(tmp))
            _ingest_seed(url)
        try:
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            measured = asyncio.run(_measure(url, sizes, args.status_files))
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
                pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    reg = measured["registration"]
    headline = measured["status_recording"][f"dataset_of_{min(sizes)}"]
    status_s = max(headline["submitted_to_active_seconds"], headline["active_to_finished_seconds"])
    summary = {
        "registration_datafiles_per_second": {
            n: r["icat_writer_datafiles_per_second"] for n, r in reg.items()
        },
        "registration_ratio_over_plain_python_icat": {
            n: r["ratio_icat_writer_over_baseline"] for n, r in reg.items()
        },
        # the slower of SUBMITTED -> ACTIVE and ACTIVE -> FINISHED, one job of 1,000 files
        "status_recording_1000_files_seconds": status_s,
    }
    copied = _copied()
    if "gateway" in copied:
        summary["gateway_accept_10k_datafiles_median_seconds"] = copied["gateway"][
            "accept_10k_datafiles_median_seconds"
        ]
        summary["gateway_over_raw_requests_per_second"] = copied["gateway"][
            "requests_per_second_gateway_over_raw"
        ]
    if "poller" in copied:
        summary["fts_status_requests_per_poll_cycle_1000_jobs"] = copied["poller"][
            "fts_status_requests_per_cycle"
        ]
    report = {
        "benchmark": "archive path: ICAT registration and status recording (icat-writer), "
        "with the gateway and poller figures",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "icat": "ICAT emulator (SQLite), one process; icat-writer's register_archive and "
            "record_transfer_status on IcatCatalogue (pool of up to 4 python-icat clients), "
            "FakeStorage, RecordingPublisher",
            "baseline": "plain python-icat in the same run: client.new Datafiles + 3 "
            "DatafileParameters each, createMany per 1,000",
        },
        "goals": {
            "registration_datafiles_per_second_min": 500,
            "status_recording_1000_files_seconds_max": 2.0,
        },
        "meets_goals": all(r["icat_writer_datafiles_per_second"] >= 500 for r in reg.values())
        and status_s <= 2.0,
        "summary": summary,
        "results": measured,
        "copied": copied,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
