"""Benchmark: the gateway's POST /archive against the floor of raw FastAPI + aio-pika publish.

The servers run as their own uvicorn processes on the same RabbitMQ, each publishing
persistent, confirmed, mandatory messages to its own exchange and quorum queues (the same
topology: a gateway consumes its own ``gateway.ledger`` queue), in the same run:

* ``gateway``: the real application (``create_app``): bearer check (session cached; ICAT is a
  fake so only the gateway is measured), pydantic validation of the seed's body, limits,
  idempotency reservation in SQLite, ``plan_archive``, envelope, confirm, answer record.
* ``raw``: a FastAPI endpoint taking the body as a plain dict and publishing it with aio-pika.

* ``before`` (``--before DIR``): the gateway of another checkout, to compare two commits.

Measured in rounds, every server in turn in each round (starting with another one each
round, so a loaded machine weighs on all alike): small (seed-sized, 4 datafiles) requests
per second at 64 concurrent clients, and the accept latency of 10,000-datafile requests sent
one at a time. The small-request ratio gateway/raw is taken per round and its median
reported; the large requests' p50 and p99 are over all rounds. Every request body is distinct
(the visitId varies), so no answer is an idempotent replay. Writes bench/results/gateway.json.

``GATEWAY_BENCH_PROFILE=/tmp/gateway.txt`` runs the gateway server under pyinstrument and
writes its report there (and an HTML one beside it) when the bench stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import math
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


#: Issue 14's goals: small requests/s at 64 clients >= 0.8x the bare endpoint's in the same run,
#: and a 10,000-datafile request accepted within 250 ms at the 99th percentile.
SMALL_RATIO_GOAL = 0.8
LARGE_P99_GOAL_SECONDS = 0.25


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


async def large_request_seconds(
    client: httpx.AsyncClient, headers: dict[str, str], files: int, runs: int, tag: str
) -> list[float]:
    """Accept latency of ``runs`` requests of ``files`` datafiles each, one at a time."""
    seconds = []
    for run in range(runs):
        content = json.dumps(body_with_files(files, f"{tag}-large-{run}")).encode()
        started = time.perf_counter()
        answer = await client.post(
            "/archive", content=content, headers={**headers, "Content-Type": "application/json"}
        )
        seconds.append(time.perf_counter() - started)
        if answer.status_code != 202:
            raise RuntimeError(f"{answer.status_code}: {answer.text[:500]}")
    return seconds


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
        "failures": failures,
        "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value at least ``fraction`` of them reach."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


#: Where a checkout keeps the packages a gateway server imports (``--before``).
SOURCE_DIRS = ("libs/common/src", "services/gateway/src")


def start_server(
    name: str, port: int, exchange: str, work: Path, source: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server in its own process: ``raw``, or a gateway (from ``source``, a checkout of
    another commit, when given: its packages come first on the path)."""
    state = work / name
    state.mkdir()
    kind = "raw" if name == "raw" else "gateway"
    argv = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    argv += ["--exchange", exchange, "--state-dir", str(state)]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(source / d) for d in SOURCE_DIRS)
    log = (work / f"{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from datastore_common.adapters.rabbitmq.bus import Bus
    from datastore_common.adapters.rabbitmq.declare import delete_topology
    from datastore_common.topology import all_queue_names
    from datastore_common.worker import topology_from

    sources: dict[str, Path | None] = {"raw": None, "gateway": None}
    if args.before is not None:
        sources["before"] = args.before
    # Each server its own exchange and queues (the same topology): a gateway consumes its
    # gateway.ledger queue, which must hold its own messages only, not the others'.
    base = f"bench-gw-{uuid.uuid4().hex[:8]}"
    exchanges = {name: f"{base}-{name}" for name in sources}
    admins = {}
    for name, exchange in exchanges.items():
        admins[name] = Bus(BROKER_URL, topology_from(settings_for(exchange, work)), source="bench")
        await admins[name].connect(attempts=5)  # declares the topology it publishes into
    ports = {name: free_port() for name in sources}
    processes = {
        name: start_server(name, ports[name], exchanges[name], work, source)
        for name, source in sources.items()
    }
    small: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    large: dict[str, list[float]] = {name: [] for name in sources}
    large_cpu: dict[str, list[float]] = {name: [] for name in sources}
    try:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        clients = {
            name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits)
            for name, port in ports.items()
        }
        headers: dict[str, dict[str, str]] = {}
        for name, client in clients.items():
            if name == "raw":
                await wait_ready(client, "/docs")
                headers[name] = {}
                continue
            await wait_ready(client, "/healthz")
            login = await client.post(
                "/login", json={"auth": "simple", "username": "root", "password": "pw"}
            )
            headers[name] = {"Authorization": f"Bearer {login.json()['sessionId']}"}
        tag = uuid.uuid4().hex[:6]
        for name, client in clients.items():  # warm-up: connections, imports, first plan
            await small_requests_per_second(client, headers[name], 100, 8, f"{tag}-warm-{name}")
            await large_request_seconds(client, headers[name], args.files, 1, f"{tag}-warm-{name}")
        names = list(sources)
        for round_ in range(args.rounds):
            # Side by side: each round measures every server in turn, starting with another
            # one each round, so that the machine's load falls on all of them alike.
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                cpu = cpu_seconds(processes[name].pid)
                measured = await small_requests_per_second(
                    clients[name],
                    headers[name],
                    args.requests,
                    args.concurrency,
                    f"{tag}-{name}-{round_}",
                )
                used = cpu_seconds(processes[name].pid) - cpu
                measured["server_cpu_ms_per_request"] = round(1000 * used / args.requests, 3)
                small[name].append(measured)
            for name in order:
                cpu = cpu_seconds(processes[name].pid)
                large[name] += await large_request_seconds(
                    clients[name], headers[name], args.files, args.runs, f"{tag}-{name}-{round_}"
                )
                large_cpu[name].append((cpu_seconds(processes[name].pid) - cpu) / args.runs)
        for client in clients.values():
            await client.aclose()
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(60)
        for admin in admins.values():
            topology = admin.topology
            await delete_topology(
                admin,
                all_queue_names(topology),
                [topology.exchange, topology.dead_letter_exchange],
            )
            await admin.close()
    return summarize(small, large, large_cpu)


def summarize(
    small: dict[str, list[dict[str, Any]]],
    large: dict[str, list[float]],
    large_cpu: dict[str, list[float]],
) -> dict[str, Any]:
    """Per server: the rounds' small-request rates and the 10,000-file latencies; per
    gateway, the median over the rounds of its rate over the raw endpoint's in that round."""
    results: dict[str, Any] = {}
    for name in small:
        rates = [r["per_second"] for r in small[name]]
        seconds = large[name]
        results[name] = {
            "small_requests": {
                "per_round": small[name],
                "median_per_second": round(statistics.median(rates), 1),
                "median_server_cpu_ms_per_request": round(
                    statistics.median(r["server_cpu_ms_per_request"] for r in small[name]), 3
                ),
                "failures": sum(r["failures"] for r in small[name]),
            },
            "accept_large": {
                "samples": len(seconds),
                "p50_seconds": round(statistics.median(seconds), 4),
                "p99_seconds": round(percentile(seconds, 0.99), 4),
                "max_seconds": round(max(seconds), 4),
                "median_server_cpu_ms_per_request": round(
                    1000 * statistics.median(large_cpu[name]), 1
                ),
            },
        }
    ratios: dict[str, Any] = {}
    for name in small:
        if name == "raw":
            continue
        per_round = [
            round(mine["per_second"] / raw["per_second"], 3)
            for mine, raw in zip(small[name], small["raw"], strict=True)
        ]
        cpu_per_round = [
            round(raw["server_cpu_ms_per_request"] / mine["server_cpu_ms_per_request"], 3)
            for mine, raw in zip(small[name], small["raw"], strict=True)
        ]
        ratios[name] = {
            "small_requests_per_second_over_raw_per_round": per_round,
            "small_requests_per_second_over_raw": round(statistics.median(per_round), 3),
            # The server's own CPU per request, raw's over this one's (so higher is better,
            # as above): what the rate ratio tends to once the server is what limits it,
            # and steady on a machine others load.
            "small_requests_cpu_raw_over_this_per_round": cpu_per_round,
            "small_requests_cpu_raw_over_this": round(statistics.median(cpu_per_round), 3),
            "accept_large_p50_over_raw": round(
                results[name]["accept_large"]["p50_seconds"]
                / results["raw"]["accept_large"]["p50_seconds"],
                2,
            ),
            "accept_large_p99_over_raw": round(
                results[name]["accept_large"]["p99_seconds"]
                / results["raw"]["accept_large"]["p99_seconds"],
                2,
            ),
        }
    results["ratios"] = ratios
    gateway = ratios["gateway"]
    results["goals"] = {
        "small_requests_per_second_over_raw_at_least_0.8": gateway[
            "small_requests_per_second_over_raw"
        ]
        >= SMALL_RATIO_GOAL,
        "accept_large_p99_below_250_ms": results["gateway"]["accept_large"]["p99_seconds"]
        < LARGE_P99_GOAL_SECONDS,
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/gateway.json")
    parser.add_argument("--files", type=int, default=10_000, help="datafiles of a large request")
    parser.add_argument("--runs", type=int, default=20, help="large requests per server and round")
    parser.add_argument("--requests", type=int, default=1000, help="small requests per round")
    parser.add_argument("--concurrency", type=int, default=64, help="clients of small requests")
    parser.add_argument("--rounds", type=int, default=5, help="each server measured once a round")
    parser.add_argument(
        "--before",
        type=Path,
        help="also measure the gateway of this checkout (e.g. `git worktree add DIR COMMIT`), "
        "side by side in the same rounds",
    )
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
            "servers": "one uvicorn process each, same RabbitMQ, each its own exchange and "
            "quorum queues (the same topology); persistent, confirmed, mandatory publishes",
            "gateway": "real create_app: cached bearer check (fake ICAT), validation, "
            "limits, SQLite idempotency and ledger, plan_archive, its own ledger feed, INFO "
            "JSON logs to a file",
            "client": "httpx.AsyncClient in a third process, keep-alive",
            "bodies": "distinct per request (no idempotent replays)",
            "rounds": f"{args.rounds} rounds; in each, every server in turn (a different one "
            f"first each round): {args.requests} small (4-datafile) requests at "
            f"{args.concurrency} concurrent clients, then {args.runs} requests of "
            f"{args.files} datafiles one at a time. Ratios are per round, then the median; "
            "the large requests' percentiles are over all rounds",
            "before": str(args.before) if args.before else None,
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"ratios": results["ratios"], "goals": results["goals"]}, indent=2))
    for name in results:
        if name not in {"ratios", "goals"}:
            small = {k: v for k, v in results[name]["small_requests"].items() if k != "per_round"}
            print(name, json.dumps(small), json.dumps(results[name]["accept_large"]))


if __name__ == "__main__":
    main()
