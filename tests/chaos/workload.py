"""The chaos tests' workload: many small archive requests sent as a careful client would,
followed to their end, then checked against every store (ledger, ICAT, tape, FTS, DLQs).

A client sends each request with an ``Idempotency-Key`` and, on anything but a 202 (a 503, a
gateway killed mid-request, a broken connection), sends it again with the same key until it
gets one: exactly what the README tells users to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.xrootd.client import XRootDClient
from datastore_common.domain.archival import ARCHIVAL_STATE
from datastore_common.ops.dlq import connect, show_dlq
from datastore_common.topology import all_queue_names
from datastore_common.worker import make_bus
from tests.e2e.api_client import dataset_folder, icat_root
from tests.support.factories import seed_body
from tests.support.stack_fixtures import DatastoreStack
from tests.support.workdirs import remove_after_session

FULL = os.environ.get("CHAOS_FULL") == "1"
#: Datasets (one request each) of FILES small files: the issue's full and reduced sizes.
DATASETS = 1000 if FULL else 100
FILES = 3
FILE_BYTES = 4096
WORKERS = ("icat-writer", "fts-submitter", "status-poller")
TERMINAL = {"FINISHED", "FINISHEDDIRTY", "FAILED", "CANCELED"}


def chaos_config(**overrides: Any) -> dict[str, Any]:
    """Stack settings for chaos: retries that outlast the outages the scenarios cause."""
    config: dict[str, Any] = {
        "broker": {"retry_delays": [0.5, 1, 2, 4], "retry_for_seconds": 900},
        "xrootd": {"checksum_concurrency": 4},
    }
    config.update(overrides)
    return config


@dataclass
class Workload:
    stack: DatastoreStack
    idc_data: Path
    names: list[str]
    sums: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> file -> adler32
    request_ids: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def prepare(cls, stack: DatastoreStack, idc_data: Path, datasets: int = DATASETS) -> Workload:
        """Write every source straight into the instrument data cache's folder."""
        run = os.urandom(3).hex().upper()
        workload = cls(stack, idc_data, [f"CH{run}{i:04d}" for i in range(datasets)])
        for name in workload.names:
            folder = dataset_folder(name)
            remove_after_session(str(Path(folder).parents[1]))
            (idc_data / folder).mkdir(parents=True, exist_ok=True)
            sums = {}
            for index in range(FILES):
                data = os.urandom(FILE_BYTES)
                (idc_data / folder / f"file_{index:04d}.nxs").write_bytes(data)
                sums[f"file_{index:04d}.nxs"] = f"{zlib.adler32(data):08x}"
            workload.sums[name] = sums
        return workload

    # -- sending ---------------------------------------------------------------------------
    def send_all(self, *, threads: int = 8, deadline_seconds: float = 300) -> None:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda n: self._send(n, deadline_seconds), self.names))

    def _send(self, name: str, deadline_seconds: float) -> None:
        deadline = time.monotonic() + deadline_seconds
        body = seed_body(name, files=FILES)
        last = "nothing"
        while True:
            with self.lock:
                self.attempts += 1
            try:
                headers = {**self._login(), "Idempotency-Key": f"chaos-{name}"}
                answer = httpx.post(
                    f"{self.stack.gateway_url}/archive", json=body, headers=headers, timeout=30
                )
                if answer.status_code == 202:
                    self.request_ids[name] = answer.json()["request_id"]
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
                if answer.status_code not in (401, 502, 503, 504):
                    raise AssertionError(f"{name}: {last}")
            except httpx.HTTPError as exc:
                last = repr(exc)  # the gateway is down or died mid-request: again, same key
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: no 202 within {deadline_seconds} s; last: {last}")
            time.sleep(0.5 + random.random())

    def _login(self) -> dict[str, str]:
        answer = httpx.post(
            f"{self.stack.gateway_url}/login",
            json={"auth": "simple", "username": "root", "password": "pw"},
            timeout=30,
        )
        if answer.status_code != 200:
            raise httpx.HTTPError(f"login: {answer.status_code}")
        return {"Authorization": f"Bearer {answer.json()['sessionId']}"}

    # -- following -------------------------------------------------------------------------
    def wait_until_all_ended(self, timeout: float) -> dict[str, dict[str, Any]]:
        """The ledger's view of every request, once every one has ended."""
        deadline = time.monotonic() + timeout
        ended: dict[str, dict[str, Any]] = {}
        while True:
            try:
                headers = self._login()
                with httpx.Client(base_url=self.stack.gateway_url, timeout=30) as client:
                    for name, request_id in self.request_ids.items():
                        if name in ended:
                            continue
                        answer = client.get(f"/requests/{request_id}", headers=headers)
                        if answer.status_code == 200 and answer.json()["state"] in TERMINAL:
                            ended[name] = answer.json()
            except httpx.HTTPError:
                pass
            if len(ended) == len(self.names):
                return ended
            if time.monotonic() > deadline:
                missing = sorted(set(self.names) - set(ended))
                raise AssertionError(
                    f"{len(missing)} requests not ended after {timeout} s, e.g. {missing[:3]}"
                )
            time.sleep(2)

    # -- checking --------------------------------------------------------------------------
    def check_everything(self, ended: dict[str, dict[str, Any]], fts: httpx.Client) -> None:
        states = {name: record["state"] for name, record in ended.items()}
        not_finished = {n: s for n, s in states.items() if s != "FINISHED"}
        assert not not_finished, f"ledger: not FINISHED: {list(not_finished.items())[:5]}"
        dead = self.dead_letters()
        assert dead == {}, (
            f"messages in dead-letter queues: {dead}: {self.dead_letter_reasons(dead)}"
        )
        # ICAT follows the same events through the icat-writer's own queue: it may be a
        # moment behind the ledger, never further.
        deadline = time.monotonic() + 120
        while True:
            try:
                self._check_icat()
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        self._check_tape()
        for record in ended.values():
            for job in record["jobs"]:
                answer = fts.get(f"/jobs/{job['job_id']}")
                assert answer.status_code == 200 and answer.json()["job_state"] == "FINISHED"
        dead = self.dead_letters()
        assert dead == {}, (
            f"messages in dead-letter queues: {dead}: {self.dead_letter_reasons(dead)}"
        )

    def _check_icat(self) -> None:
        client = icat_root(self.stack.icat_url)
        prefix = self.names[0][:-4]
        investigations = client.search(
            f"SELECT i.name FROM Investigation i WHERE i.name LIKE '{prefix}%'"
        )
        assert sorted(investigations) == sorted(self.names), "one Investigation per name"
        datasets = client.search(
            f"SELECT COUNT(d) FROM Dataset d JOIN d.investigation i WHERE i.name LIKE '{prefix}%'"
        )
        assert datasets == [len(self.names)], "one Dataset per request"
        files = client.search(
            "SELECT f FROM Datafile f JOIN f.dataset d JOIN d.investigation i "
            f"WHERE i.name LIKE '{prefix}%' INCLUDE f.parameters.type"
        )
        assert len(files) == len(self.names) * FILES, "one Datafile per file"
        for datafile in files:
            values = {p.type.name: p.stringValue for p in datafile.parameters}
            assert values.get(ARCHIVAL_STATE) == "FINISHED", (datafile.location, values)
            assert len(datafile.parameters) == len(values), "one parameter per type"

    def _check_tape(self) -> None:
        settings = self.stack.settings
        storage = XRootDClient()
        tape = settings.tape_archive.rstrip("/")

        async def all_sums() -> list[tuple[str, str, str]]:
            checks = []
            for name, sums in self.sums.items():
                for file_name, adler in sums.items():
                    path = f"/{settings.tape_root_dir}{dataset_folder(name)}/{file_name}"
                    checks.append((path, adler, storage.checksum(f"{tape}/{path}")))
            answers = await asyncio.gather(*(c[2] for c in checks))
            return [(p, a, got) for (p, a, _), got in zip(checks, answers, strict=True)]

        for path, adler, got in asyncio.run(all_sums()):
            assert got == f"adler32:{adler}", f"tape {path}: {got} != {adler}"

    def dead_letters(self) -> dict[str, int]:
        """Messages in every DLQ of the stack's topology (empty when nothing was lost)."""

        async def count() -> dict[str, int]:
            bus: Bus = make_bus(self.stack.settings, "chaos-check")
            await bus.connect(attempts=10)
            try:
                channel = await bus.new_channel(1)
                found = {}
                for name in all_queue_names(bus.topology):
                    if not name.startswith("dlq."):
                        continue
                    queue = await channel.declare_queue(name, passive=True)
                    if queue.declaration_result.message_count:
                        found[name] = queue.declaration_result.message_count
                await channel.close()
                return found
            finally:
                await bus.close()

        return asyncio.run(count())

    def dead_letter_reasons(self, queues: dict[str, int]) -> list[str]:
        """Why each dead letter is there (type, who dead-lettered it and the reason): a failed
        run explains itself even after its logs are gone."""

        async def describe() -> list[str]:
            async with connect(self.stack.settings.broker.url.get_secret_value()) as connection:
                reasons = []
                for queue in queues:
                    report = await show_dlq(connection, queue, limit=20)
                    reasons += [
                        f"{queue}: {letter.type} {letter.correlation_id} attempt={letter.attempt} "
                        f"by={letter.dead_lettered_by} death={letter.death_reason} "
                        f"{letter.error_type}: {letter.error}"
                        for letter in report.shown
                    ]
                return reasons

        return asyncio.run(describe())


# -- faults ------------------------------------------------------------------------------------
class Chaos(threading.Thread):
    """Runs ``act`` every ``every`` seconds (jittered) until stopped."""

    def __init__(self, act: Callable[[], None], every: float) -> None:
        super().__init__(daemon=True)
        self._act, self._every = act, every
        self._stopped = threading.Event()
        self.count = 0

    def run(self) -> None:
        while not self._stopped.wait(self._every * (0.5 + random.random())):
            self._act()
            self.count += 1

    def stop(self) -> None:
        self._stopped.set()
        self.join(60)


class FaultOnce(threading.Thread):
    """Runs ``act`` once, ``after`` seconds after the workload starts (requests in flight)."""

    def __init__(self, act: Callable[[], None], after: float) -> None:
        super().__init__(daemon=True)
        self._act, self._after = act, after
        self._stopped = threading.Event()
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        if self._stopped.wait(self._after):
            return
        try:
            self._act()
            self.count += 1
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc

    def stop(self) -> None:
        """Wait for the fault to end (it always restores what it broke)."""
        self.join(600)
        if self.error is not None:
            raise AssertionError(f"the fault itself failed: {self.error!r}") from self.error


def kill_a_worker(stack: DatastoreStack) -> None:
    """SIGKILL one replica of a random worker type and start a new one in its place."""
    service = random.choice(WORKERS)
    replicas = stack.processes.get(service, [])
    if not replicas:
        return
    victim = replicas.pop(random.randrange(len(replicas)))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stack.start(service)


def kill_the_gateway(stack: DatastoreStack, down_seconds: float = 2.0) -> None:
    for process in stack.processes.pop("gateway", []):
        process.send_signal(signal.SIGKILL)
        process.wait()
    time.sleep(down_seconds)
    stack.start("gateway")


def restart_rabbitmq(down_seconds: float = 3.0) -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(down_seconds)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=False, capture_output=True, timeout=120)
