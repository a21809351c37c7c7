"""Benchmark: the gateway's POST /archive against the floor of raw FastAPI + aio-pika publish.

Both servers run as their own uvicorn processes on the same RabbitMQ, publishing persistent,
confirmed, mandatory messages to the same exchange and quorum queue, in the same run:

* ``gateway``: the real application (``create_app``): bearer check (session cached; ICAT is a
  fake so only the gateway is measured), pydantic validation of the seed's body, limits,
  idempotency reservation in SQLite, ``plan_archive``, envelope, confirm, answer record.
* ``raw``: a FastAPI endpoint taking the body as a plain dict and publishing it with aio-pika.

Measures the accept latency of one 10,000-datafile request (ten runs) and small (seed-sized,
4 datafiles) requests per second at a fixed client concurrency. Every request body is distinct
(the visitId varies), so no answer is an idempotent replay. Writes bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SEED_BODY = json.loads((REPO / "tests/unit/gateway/seed_archive_body.json").read_text())
#: Seconds both servers keep an idle connection: longer than any phase of the bench, so no
#: client reuses a connection the server is just closing (a ReadError, not a measurement).
KEEP_ALIVE = 300
BROKER_URL = os.environ.get("DATASTORE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body_with_files(count: int, visit: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED_BODY)
    investigation = body["investigations"][0]
    investigation["visitId"] = visit.replace("-", "_")  # a visitId holds no '-'
    dataset = investigation["datasets"][0]
    template = dataset["datafiles"][0]
    dataset["datafiles"] = [{**template, "name": f"file_{i:05d}.nxs"} for i in range(count)]
    return body


def settings_for(exchange: str, state_dir: Path) -> Any:
    from datastore_common.settings import DatastoreSettings

    return DatastoreSettings(
        broker={"url": BROKER_URL, "exchange": exchange, "queue_prefix": f"{exchange}."},
        gateway={"state_db": f"sqlite:///{state_dir}/gateway.sqlite"},
        fts3={"vo": "bench-vo"},
        log={"level": "INFO", "format": "json"},
    )


# --- the two servers (run in child processes) -------------------------------------------------


def serve_gateway(port: int, exchange: str, state_dir: Path) -> None:
    import uvicorn

    from datastore_common.logging import configure_logging
    from datastore_common.testing.fake_vocabulary import FakeVocabulary
    from datastore_common.testing.fakes import FakeSessions
    from datastore_gateway.main import create_app

    settings = settings_for(exchange, state_dir)
    configure_logging("gateway", level=settings.log.level, fmt="json")
    app = create_app(
        settings,
        sessions=FakeSessions({"simple/root": "pw"}),
        vo="bench-vo",
        vocabulary=FakeVocabulary(),  # ICAT's names: the gateway bench measures the gateway
    )

    def serve() -> None:
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE,
        )

    profile_to = os.environ.get("GATEWAY_BENCH_PROFILE")  # pyinstrument's report of the server
    if not profile_to:
        serve()
        return
    import signal

    from pyinstrument import Profiler

    # uvicorn re-raises the SIGTERM it stopped on once it has shut down: let that one pass,
    # so that the report below is written.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with Profiler(interval=0.001, async_mode="disabled") as profiler:
        serve()
    Path(profile_to).write_text(profiler.output_text(unicode=True, color=False))
    Path(profile_to).with_suffix(".html").write_text(profiler.output_html())


def serve_raw(port: int, exchange: str) -> None:
    import aio_pika
    import uvicorn
    from fastapi import FastAPI

    from datastore_common.messages import ArchiveRequested

    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        connection = await aio_pika.connect_robust(BROKER_URL)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        state["exchange"] = await channel.get_exchange(exchange)
        yield
        await connection.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/archive", status_code=202)
    async def archive(body: dict[str, Any]) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        message = aio_pika.Message(
            json.dumps({"request_id": request_id, "data": body}).encode(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        )
        await state["exchange"].publish(message, routing_key=ArchiveRequested.TYPE, mandatory=True)
        return {"request_id": request_id, "job_ids": []}

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
    )


# --- the load ---------------------------------------------------------------------------------


async def wait_ready(client: httpx.AsyncClient, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(path)).status_code < 500:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"server not ready: {client.base_url}")


async def large_request_latency(
    client: httpx.AsyncClient, headers: dict[str, str], files: int, runs: int, tag: str
) -> dict[str, Any]:
    seconds = []
    body_bytes = 0
    for run in range(runs):
        content = json.dumps(body_with_files(files, f"{tag}-large-{run}")).encode()
        body_bytes = len(content)
        started = time.perf_counter()
        answer = await client.post(
            "/archive", content=content, headers={**headers, "Content-Type": "application/json"}
        )
        seconds.append(time.perf_counter() - started)
        if answer.status_code != 202:
            raise RuntimeError(f"{answer.status_code}: {answer.text[:500]}")
    return {
        "datafiles": files,
        "body_bytes": body_bytes,
        "runs": runs,
        "median_seconds": round(statistics.median(seconds), 4),
        "max_seconds": round(max(seconds), 4),
        "jobs": len(answer.json()["job_ids"]),
    }


async def small_requests_per_second(
    client: httpx.AsyncClient, headers: dict[str, str], total: int, concurrency: int, tag: str
) -> dict[str, Any]:
    bodies = [json.dumps(body_with_files(4, f"{tag}-small-{i}")).encode() for i in range(total)]
    send_headers = {**headers, "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            answer = await client.post("/archive", content=body, headers=send_headers)
            latencies.append(time.perf_counter() - started)
            failures += answer.status_code != 202

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": total,
        "concurrency": concurrency,
        "failures": failures,
        "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
    }


def start_server(name: str, port: int, exchange: str, work: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, __file__, "--serve", name, "--port", str(port)]
    argv += ["--exchange", exchange, "--state-dir", str(work)]
    log = (work / f"{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from datastore_common.adapters.rabbitmq.bus import Bus
    from datastore_common.adapters.rabbitmq.declare import delete_topology
    from datastore_common.topology import all_queue_names
    from datastore_common.worker import topology_from

    exchange = f"bench-gw-{uuid.uuid4().hex[:8]}"
    topology = topology_from(settings_for(exchange, work))
    admin = Bus(BROKER_URL, topology, source="bench")
    await admin.connect(attempts=5)  # declares the topology both servers publish into
    ports = {"gateway": free_port(), "raw": free_port()}
    processes = {name: start_server(name, port, exchange, work) for name, port in ports.items()}
    results: dict[str, Any] = {}
    try:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        clients = {
            name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits)
            for name, port in ports.items()
        }
        await wait_ready(clients["gateway"], "/healthz")
        await wait_ready(clients["raw"], "/docs")
        login = await clients["gateway"].post(
            "/login", json={"auth": "simple", "username": "root", "password": "pw"}
        )
        auth = {"Authorization": f"Bearer {login.json()['sessionId']}"}
        headers = {"gateway": auth, "raw": {}}
        tag = uuid.uuid4().hex[:6]
        for name, client in clients.items():  # warm-up: connections, imports, first plan
            await small_requests_per_second(client, headers[name], 50, 8, f"{tag}-warm-{name}")
        for name, client in clients.items():
            results[name] = {
                "accept_10k_datafiles": await large_request_latency(
                    client, headers[name], args.files, args.runs, f"{tag}-{name}"
                ),
                "small_requests": await small_requests_per_second(
                    client, headers[name], args.requests, args.concurrency, f"{tag}-{name}"
                ),
            }
        for client in clients.values():
            await client.aclose()
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(60)
        await delete_topology(
            admin, all_queue_names(topology), [topology.exchange, topology.dead_letter_exchange]
        )
        await admin.close()
    gateway, raw = results["gateway"], results["raw"]
    results["ratios"] = {
        "small_requests_per_second_gateway_over_raw": round(
            gateway["small_requests"]["per_second"] / raw["small_requests"]["per_second"], 3
        ),
        "accept_10k_median_gateway_over_raw": round(
            gateway["accept_10k_datafiles"]["median_seconds"]
            / raw["accept_10k_datafiles"]["median_seconds"],
            3,
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/gateway.json")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", choices=["gateway", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--exchange", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "gateway":
        serve_gateway(args.port, args.exchange, args.state_dir)
        return
    if args.serve == "raw":
        serve_raw(args.port, args.exchange)
        return
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as work:
        results = asyncio.run(measure(args, Path(work)))
    report = {
        "benchmark": "gateway POST /archive vs raw FastAPI + aio-pika publish (same run)",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "setup": {
            "servers": "one uvicorn process each, same RabbitMQ, same exchange and quorum "
            "queue; persistent, confirmed, mandatory publishes",
            "gateway": "real create_app: cached bearer check (fake ICAT), validation, "
            "limits, SQLite idempotency, plan_archive, INFO JSON logs to a file",
            "client": "httpx.AsyncClient in a third process, keep-alive",
            "bodies": "distinct per request (no idempotent replays)",
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))


if __name__ == "__main__":
    main()
