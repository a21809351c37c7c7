"""Benchmark: FTS status requests per poll cycle with 1,000 active jobs (goal: 10).

The status-poller runs with its real wiring (``datastore_status_poller.app.wire``) on the real
RabbitMQ, against an FTS3 emulator started with ``--concurrency 0``: it accepts jobs but never
starts a copy, so all 1,000 stay SUBMITTED, i.e. active, as on a busy FTS. Every HTTP request
the poller makes is counted. Cycle 1 polls the 1,000 fresh ``TransferSubmitted`` (and publishes
their first state); cycle 2 polls the same jobs again after the delay queue hands them back
(nothing changed, nothing published). For comparison, one status request per job (what the
original poller did) is timed on the same jobs: time spent in FTS requests, keep-alive
connection, files included. The first-to-last spread of a cycle follows how the jobs entered the
delay queue, not the poller's cost. Writes bench/results/poller.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_bench import REPO, free_port, run, tls_context, wait_ready

from datastore_common.adapters.fts3.client import Fts3Client
from datastore_common.adapters.fts3.transfer_service import Fts3TransferService
from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.domain.job_ids import fts_job_id, job_sid
from datastore_common.logging import configure_logging
from datastore_common.messages import (
    PlannedJob,
    PlannedTransfer,
    TransferStatus,
    TransferSubmitted,
)
from datastore_common.settings import load_settings
from datastore_common.topology import all_queue_names
from datastore_common.worker import topology_from
from datastore_status_poller.app import wire

BROKER = os.environ.get("DATASTORE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


class RequestLog:
    """Every status request the poller sends: when, and how many job ids it asked about."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, int]] = []
        self.seconds: list[float] = []  # each status request's round trip, in order
        self._started: dict[int, float] = {}

    async def __call__(self, request: httpx.Request) -> None:
        path = request.url.path.lstrip("/")
        if request.method == "GET" and path.startswith("jobs/"):
            ids = path.split("/", 1)[1]
            self.requests.append((time.monotonic(), len(ids.split(","))))
            self._started[id(request)] = time.perf_counter()

    async def answered(self, response: httpx.Response) -> None:
        started = self._started.pop(id(response.request), None)
        if started is not None:
            await response.aread()
            self.seconds.append(time.perf_counter() - started)

    def since(self, index: int) -> list[tuple[float, int]]:
        return self.requests[index:]


def start_idle_emulator(work: Path, certs: Path, port: int) -> subprocess.Popen[bytes]:
    """The emulator with no copy slots: jobs are accepted and stay active."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTS3_EMULATOR_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fts3_emulator",
            "--config",
            str(work / "none.yaml"),
            "--port",
            str(port),
            "--db-path",
            str(work / "fts3.sqlite"),
            "--cert",
            str(certs / "hostcert.pem"),
            "--key",
            str(certs / "hostkey.pem"),
            "--ca",
            str(certs / "ca.pem"),
            "--concurrency",
            "0",
        ],
        env=env,
        cwd=REPO,
        stdout=(work / "emulator.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def job(request_id: str, vo: str, index: int) -> PlannedJob:
    sid = job_sid(request_id, index)
    path = f"/bench-poller/{request_id}/file_{index:04d}.nxs"
    return PlannedJob(
        job_id=fts_job_id(vo, sid),
        sid=sid,
        kind="archive",
        transfers=[
            PlannedTransfer(
                source=f"root://127.0.0.1:11094/{path}",
                destination=f"root://127.0.0.1:11096//archive{path}",
                datafile_id=index,
                dataset_id=1,
            )
        ],
    )


async def wait_for(condition: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark stalled")
        await asyncio.sleep(0.05)


async def bench(url: str, certs: Path, jobs: int, interval: float) -> dict[str, Any]:
    name = f"bench-poller-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        broker={"url": BROKER, "exchange": name, "queue_prefix": f"{name}."},
        fts3={"endpoint": url, "ca_path": str(certs / "ca.pem")},
        x509_user_cert=certs / "usercert.pem",
        x509_user_key=certs / "userkey.pem",
        poller={"interval_seconds": interval, "batch_size": 100, "batch_wait_seconds": 0.5},
    )
    requests = RequestLog()
    client = Fts3Client(
        url,
        cert=certs / "usercert.pem",
        key=certs / "userkey.pem",
        ca=certs / "ca.pem",
        event_hooks={"request": [requests], "response": [requests.answered]},
    )
    service = Fts3TransferService(client, settings.fts3)
    vo = await service.vo()
    request_id = uuid.uuid4().hex[:12]
    planned = [job(request_id, vo, i) for i in range(jobs)]
    limit = asyncio.Semaphore(16)

    async def submit(one: PlannedJob) -> None:
        async with limit:
            assert await service.submit(one) == one.job_id

    started = time.monotonic()
    await asyncio.gather(*(submit(p) for p in planned))
    submit_seconds = time.monotonic() - started

    topology = topology_from(settings)
    bus = Bus(BROKER, topology, source="bench")
    poller_bus = Bus(BROKER, topology, source="status-poller")
    await bus.connect()
    await poller_bus.connect()
    statuses: list[TransferStatus] = []
    channel = await bus.new_channel(500)
    capture = await channel.declare_queue(exclusive=True, auto_delete=True)
    await capture.bind(await channel.get_exchange(name), routing_key=TransferStatus.TYPE)

    async def on_status(message: Any) -> None:
        statuses.append(TransferStatus.model_validate(json.loads(message.body)["data"]))
        await message.ack()

    await capture.consume(on_status)
    try:
        await wire(poller_bus, settings, transfers=service)
        mark = len(requests.requests)
        cycle1_start = time.monotonic()
        for p in planned:
            await bus.publish_payload(
                TransferSubmitted(
                    request_id=request_id,
                    kind="archive",
                    job_id=p.job_id,
                    fts_endpoint=url,
                    transfers=p.transfers,
                ),
                correlation_id=request_id,
            )
        await wait_for(lambda: sum(n for _, n in requests.since(mark)) >= jobs, 120)
        cycle1 = requests.since(mark)
        cycle1_seconds = cycle1[-1][0] - cycle1_start
        await wait_for(lambda: len(statuses) >= jobs, 60)

        mark = len(requests.requests)
        await wait_for(lambda: sum(n for _, n in requests.since(mark)) >= jobs, 120 + interval)
        cycle2 = requests.since(mark)
        cycle2_fts_seconds = sum(requests.seconds[-len(cycle2) :])
        await asyncio.sleep(0.5)
        published_in_cycle2 = len(statuses) - jobs
    finally:
        await poller_bus.close()
        await delete_topology(bus, all_queue_names(topology), [name, topology.dead_letter_exchange])
        await bus.close()

    before = len(requests.seconds)
    for p in planned:
        await service.status([p.job_id])
    per_job_seconds = sum(requests.seconds[before:])
    await service.aclose()
    return {
        "active_jobs": jobs,
        "batch_size": 100,
        "poll_interval_seconds": interval,
        "submit_seconds": round(submit_seconds, 2),
        "status_requests_per_cycle": {
            "cycle_1_new_jobs": len(cycle1),
            "cycle_2_from_delay_queue": len(cycle2),
        },
        "ids_per_request": sorted({n for _, n in cycle1 + cycle2}),
        "cycle_1_seconds_publish_to_last_request": round(cycle1_seconds, 2),
        "cycle_2_seconds_first_to_last_request": round(cycle2[-1][0] - cycle2[0][0], 2),
        "cycle_2_seconds_in_fts_status_requests": round(cycle2_fts_seconds, 3),
        "status_events_cycle_1": jobs,
        "status_events_cycle_2_nothing_changed": published_in_cycle2,
        "per_job_polling_requests_per_cycle": jobs,
        "per_job_polling_seconds_in_fts_status_requests": round(per_job_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/poller.json")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3.0)
    args = parser.parse_args()
    configure_logging("poller-bench", level="WARNING")

    work = Path(tempfile.mkdtemp(prefix="poller-bench-"))
    run("bash", str(REPO / "deploy/local/certs.sh"))
    certs = Path(os.environ.get("DATASTORE_VAR", REPO / "var")) / "certs"
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    process = start_idle_emulator(work, certs, port)
    try:
        with httpx.Client(base_url=url, verify=tls_context(certs), timeout=30) as client:
            wait_ready(client, process)
        measured = asyncio.run(bench(url, certs, args.jobs, args.interval))
    finally:
        process.terminate()
        process.wait(timeout=15)
    result = {
        "benchmark": "poller",
        "description": (__doc__ or "").splitlines()[0],
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        **measured,
        "goal_status_requests_per_cycle": args.jobs // 100,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
