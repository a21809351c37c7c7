"""``datastore-ops dlq`` against the real RabbitMQ: look at dead letters and redrive them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc
import pytest
import yaml

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import (
    HEADER_ATTEMPT,
    HEADER_DELIVERY_COUNT,
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_ORIGINAL_QUEUE,
)
from datastore_common.domain.senders import HEADER_SENDER
from datastore_common.errors import PermanentError
from datastore_common.messages import PAYLOAD_TYPES, Envelope, TransferStatus, wrap
from datastore_common.ops.cli import run_cli
from datastore_common.ops.dlq import HEADER_REPLAYS, UsageError, resolve_dlq
from datastore_common.settings import CONFIG_ENV, load_settings
from datastore_common.topology import GATEWAY_LEDGER, Topology, dlq_name
from datastore_common.worker import topology_from
from tests.support.rabbitmq_fixtures import BusFactory, unique_name

pytestmark = pytest.mark.integration

ENTRY_POINT = Path(sys.executable).parent / "datastore-ops"
FIRST_FAILURE = "x-datastore-first-failure"
REASON = "investigation ABC123-1 names unknown instrument 'nope'"


@dataclass
class Stack:
    config: Path
    topology: Topology
    bus: Bus
    connection: aio_pika.abc.AbstractConnection
    capsys: pytest.CaptureFixture[str]

    @property
    def queue(self) -> str:
        return self.topology.queue(GATEWAY_LEDGER)

    @property
    def dlq(self) -> str:
        return dlq_name(self.queue)

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run the command as a function; returns exit code, stdout, stderr."""
        self.capsys.readouterr()
        code = await run_cli(["--config", str(self.config), "dlq", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    async def count(self, queue: str) -> int:
        channel = await self.connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        await channel.close()
        return declared.declaration_result.message_count or 0

    async def wait_count(self, queue: str, expected: int, wait: float = 10.0) -> None:
        deadline = time.monotonic() + wait
        while (found := await self.count(queue)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{queue} holds {found} messages, expected {expected}")
            await asyncio.sleep(0.05)

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take every message out of a queue, in order."""
        channel = await self.connection.channel()
        source = await channel.get_queue(queue)
        taken = []
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        await channel.close()
        return taken


@pytest.fixture
async def stack(
    bus_factory: BusFactory,
    rabbitmq_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[Stack]:
    """A throw-away topology (own exchange and queue prefix) and the config.yaml naming it."""
    name = unique_name("ops")
    config = tmp_path / "config.yaml"
    broker = {
        "url": rabbitmq_url,
        "exchange": name,
        "queue_prefix": f"{name}.",
        "retry_delays": [0.2],
        "delivery_limit": 2,
    }
    config.write_text(yaml.safe_dump({"broker": broker}))
    # The tool points DATASTORE_CONFIG at --config; monkeypatch puts the old value back.
    monkeypatch.setenv(CONFIG_ENV, str(config))
    topology = topology_from(load_settings())
    bus = await bus_factory(topology)
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        yield Stack(config, topology, bus, connection, capsys)
    finally:
        await connection.close()


def status(job: str, request: str = "req-1") -> Envelope[Any]:
    data = TransferStatus(
        request_id=request, kind="archive", job_id=job, fts_endpoint="https://fts", job_state="X"
    )
    return wrap(data, source="tests", correlation_id=request)


async def dead_letter_directly(stack: Stack, envelope: Envelope[Any]) -> None:
    """Put a message into the DLQ with the headers the bus's policy writes (and properties)."""
    await stack.bus.send_to_queue(
        stack.dlq,
        envelope,
        headers={
            HEADER_ERROR: f"refused {envelope.data.job_id}",
            HEADER_ERROR_TYPE: "PermanentError",
            HEADER_ATTEMPT: 1,
            HEADER_ORIGINAL_QUEUE: stack.queue,
            FIRST_FAILURE: 1700000000.0,
            "x-trace": envelope.data.job_id,  # not ours: survives a replay
        },
    )


def assert_fresh(message: aio_pika.abc.AbstractIncomingMessage, replays: int = 1) -> None:
    """A replayed message carries no failure history, only the replay count."""
    headers = dict(message.headers or {})
    assert headers.pop(HEADER_REPLAYS) == replays
    # Published now by the operator, on behalf of the message's original sender.
    assert headers.pop(HEADER_SENDER) == "guest"
    assert not [key for key in headers if key.startswith("x-datastore-")]
    assert "x-death" not in headers
    assert not any(key.startswith(("x-first-death", "x-last-death")) for key in headers)
    assert headers.get(HEADER_DELIVERY_COUNT, 0) == 0  # a fresh message, counted from zero


def job_ids(messages: list[aio_pika.abc.AbstractIncomingMessage]) -> list[str]:
    return [Envelope[TransferStatus].model_validate_json(m.body).data.job_id for m in messages]


async def test_a_dead_lettered_request_is_listed_shown_replayed_and_then_processed(
    stack: Stack,
) -> None:
    async def refuses(envelope: Envelope[Any]) -> None:
        raise PermanentError(REASON)

    sent = status("job-1")
    await stack.bus.publish(sent)
    broken = await stack.bus.consume(stack.queue, refuses, PAYLOAD_TYPES)
    await stack.wait_count(stack.dlq, 1)
    await broken.stop()

    # list: every DLQ of the topology, this one with its message
    code, out, _ = await stack.cli("list", "--json")
    assert code == 0
    counts = {entry["queue"]: entry["messages"] for entry in json.loads(out)}
    assert counts == {dlq_name(spec.name): 0 for spec in stack.topology.queues} | {stack.dlq: 1}
    code, out, _ = await stack.cli("list")
    assert code == 0
    assert any(line.split() == [stack.dlq, "1"] for line in out.splitlines())

    # show: the reason headers, and the message is still there afterwards
    code, out, _ = await stack.cli("show", GATEWAY_LEDGER)
    assert code == 0
    assert REASON in out
    assert "PermanentError" in out
    assert str(sent.id) in out
    assert TransferStatus.TYPE in out
    code, out, _ = await stack.cli("show", GATEWAY_LEDGER, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["messages"] == 1
    [letter] = shown["shown"]
    assert letter["id"] == str(sent.id)
    assert letter["type"] == TransferStatus.TYPE
    assert letter["correlation_id"] == "req-1"
    assert letter["attempt"] == 1
    assert letter["original_queue"] == stack.queue
    assert letter["error_type"] == "PermanentError"
    assert letter["error"] == REASON
    assert letter["dead_lettered_by"] == "datastore"
    assert await stack.count(stack.dlq) == 1

    # replay: back on the work queue with the attempt and error headers gone
    code, out, _ = await stack.cli("replay", GATEWAY_LEDGER)
    assert code == 0
    assert f"replayed 1 message(s) from {stack.dlq}: 1 to {stack.queue}" in out
    assert await stack.count(stack.dlq) == 0
    channel = await stack.connection.channel()
    work = await channel.get_queue(stack.queue)
    back = await work.get(no_ack=False, timeout=5)
    assert_fresh(back)
    assert Envelope[TransferStatus].model_validate_json(back.body) == sent
    await back.nack(requeue=True)
    await channel.close()

    # the now-fixed handler processes it, and nothing is left anywhere
    handled: list[Envelope[Any]] = []
    done = asyncio.Event()

    async def fixed(envelope: Envelope[Any]) -> None:
        handled.append(envelope)
        done.set()

    await stack.bus.consume(stack.queue, fixed, PAYLOAD_TYPES)
    await asyncio.wait_for(done.wait(), 10)
    assert handled == [sent]
    await stack.wait_count(stack.queue, 0)
    assert await stack.count(stack.dlq) == 0


async def test_show_keeps_every_message_in_order_and_unchanged(stack: Stack) -> None:
    for job in ("a", "b", "c"):
        await dead_letter_directly(stack, status(job))
    code, out, _ = await stack.cli("show", stack.dlq, "--limit", "1")
    assert code == 0
    assert "3 message(s), showing 1" in out
    assert "refused a" in out
    assert "refused b" not in out
    code, out, _ = await stack.cli("show", GATEWAY_LEDGER, "--body", "--json")
    assert code == 0
    shown = json.loads(out)["shown"]
    assert [letter["body"]["data"]["job_id"] for letter in shown] == ["a", "b", "c"]
    assert [letter["position"] for letter in shown] == [1, 2, 3]

    kept = await stack.drain(stack.dlq)
    assert job_ids(kept) == ["a", "b", "c"]
    for message, job in zip(kept, ("a", "b", "c"), strict=True):
        headers = dict(message.headers or {})
        headers.pop(HEADER_DELIVERY_COUNT, None)  # the broker counts the peeks
        assert headers == {
            HEADER_ERROR: f"refused {job}",
            HEADER_ERROR_TYPE: "PermanentError",
            HEADER_ATTEMPT: 1,
            HEADER_ORIGINAL_QUEUE: stack.queue,
            FIRST_FAILURE: 1700000000.0,
            "x-trace": job,
        }


async def test_replay_by_id_takes_only_that_message_and_keeps_the_others_in_order(
    stack: Stack,
) -> None:
    letters = [status(job) for job in ("a", "b", "c")]
    for envelope in letters:
        await dead_letter_directly(stack, envelope)

    code, _, err = await stack.cli("replay", GATEWAY_LEDGER, "--id", "no-such-id")
    assert code == 1
    assert "no message" in err
    code, out, _ = await stack.cli("replay", GATEWAY_LEDGER, "--id", str(letters[1].id))
    assert code == 0
    assert "replayed 1 message(s)" in out
    assert "2 message(s) left" in out

    [replayed] = await stack.drain(stack.queue)
    assert job_ids([replayed]) == ["b"]
    assert_fresh(replayed)
    assert (replayed.headers or {})["x-trace"] == "b"
    assert replayed.message_id == str(letters[1].id)  # the properties were carried over
    assert job_ids(await stack.drain(stack.dlq)) == ["a", "c"]


async def test_replay_with_a_limit_takes_the_oldest_first(stack: Stack) -> None:
    for job in ("a", "b", "c"):
        await dead_letter_directly(stack, status(job))
    code, _, _ = await stack.cli("replay", GATEWAY_LEDGER, "--limit", "2")
    assert code == 0
    assert job_ids(await stack.drain(stack.queue)) == ["a", "b"]
    assert job_ids(await stack.drain(stack.dlq)) == ["c"]


async def test_a_refused_replay_loses_nothing_and_keeps_the_order(stack: Stack) -> None:
    await dead_letter_directly(stack, status("a"))
    # b names a queue that does not exist: the broker returns the mandatory publish
    await stack.bus.send_to_queue(
        stack.dlq, status("b"), headers={HEADER_ORIGINAL_QUEUE: f"{stack.queue}.gone"}
    )
    await dead_letter_directly(stack, status("c"))
    await dead_letter_directly(stack, status("d"))

    code, _, err = await stack.cli("replay", GATEWAY_LEDGER)
    assert code == 1
    assert f"for {stack.queue}.gone" in err
    assert f"it stays in {stack.dlq}, 1 replayed before it" in err
    assert len(err.strip().splitlines()) == 1
    assert job_ids(await stack.drain(stack.queue)) == ["a"]  # nothing after the refusal
    assert job_ids(await stack.drain(stack.dlq)) == ["b", "c", "d"]


async def test_a_message_dead_lettered_by_the_delivery_limit_also_replays(stack: Stack) -> None:
    await stack.bus.publish(status("killer"))
    channel = await stack.connection.channel()
    work = await channel.get_queue(stack.queue)
    # Each reject-with-requeue is what a dying worker looks like to the broker.
    for _ in range(stack.topology.delivery_limit + 1):
        message = await work.get(fail=False, timeout=5)
        if message is None:
            break
        await message.nack(requeue=True)
    await channel.close()
    await stack.wait_count(stack.dlq, 1)

    code, out, _ = await stack.cli("show", stack.dlq, "--json")
    assert code == 0
    [letter] = json.loads(out)["shown"]
    assert letter["dead_lettered_by"] == "rabbitmq"
    assert letter["death_reason"] == "delivery_limit"
    assert letter["error_type"] is None
    assert letter["original_queue"] == stack.queue  # from the DLQ's name: no datastore header
    code, out, _ = await stack.cli("show", stack.dlq)
    assert "dead-lettered by RabbitMQ: delivery_limit" in out

    code, out, _ = await stack.cli("replay", stack.dlq)
    assert code == 0
    assert f"1 to {stack.queue}" in out
    [back] = await stack.drain(stack.queue)
    assert job_ids([back]) == ["killer"]
    assert_fresh(back)
    assert await stack.count(stack.dlq) == 0


async def test_purge_refuses_without_yes_and_empties_the_dlq_with_it(stack: Stack) -> None:
    for job in ("a", "b"):
        await dead_letter_directly(stack, status(job))
    code, out, err = await stack.cli("purge", GATEWAY_LEDGER)
    assert code == 2
    assert f"refusing to purge {stack.dlq} (2 message(s)) without --yes" in err
    assert len(err.strip().splitlines()) == 1
    assert await stack.count(stack.dlq) == 2

    code, out, _ = await stack.cli("purge", GATEWAY_LEDGER, "--yes")
    assert code == 0
    assert f"purged 2 message(s) from {stack.dlq}" in out
    assert await stack.count(stack.dlq) == 0
    code, out, _ = await stack.cli("replay", GATEWAY_LEDGER)
    assert code == 0
    assert "nothing to replay" in out


async def test_usage_errors_exit_2_with_one_line(stack: Stack) -> None:
    code, _, err = await stack.cli("show", "no-such-role")
    assert code == 2
    assert "unknown queue 'no-such-role'" in err
    assert GATEWAY_LEDGER in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = await stack.cli("replay", GATEWAY_LEDGER, "--limit", "0")
    assert code == 2
    code, _, err = await stack.cli()
    assert code == 2
    assert "required" in err


def test_queue_names_are_resolved_with_and_without_dlq_and_prefix() -> None:
    from datastore_common.topology import datastore_topology

    topology = datastore_topology(queue_prefix="p.")
    expected = "dlq.p.icat-writer.archive"
    for name in (
        "icat-writer.archive",
        "p.icat-writer.archive",
        "dlq.icat-writer.archive",
        "dlq.p.icat-writer.archive",
    ):
        assert resolve_dlq(topology, name) == expected
    with pytest.raises(UsageError):
        resolve_dlq(topology, "status-poller.delay")  # a delay queue has no DLQ
    with pytest.raises(UsageError):
        resolve_dlq(topology, "dlq.dlq.icat-writer.archive")


async def run_entry_point(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(ENTRY_POINT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_console_script_works(stack: Stack) -> None:
    assert ENTRY_POINT.is_file(), "run uv sync: the datastore-ops entry point is missing"
    await dead_letter_directly(stack, status("a"))
    code, out, err = await run_entry_point("--config", str(stack.config), "dlq", "list", "--json")
    assert code == 0, err
    counts = {entry["queue"]: entry["messages"] for entry in json.loads(out)}
    assert counts[stack.dlq] == 1

    code, out, err = await run_entry_point("--config", str(stack.config), "dlq", "show", "nope")
    assert code == 2
    assert err.count("\n") == 1

    # An unreachable broker: exit 1, one line, no traceback, no password.
    code, out, err = await run_entry_point(
        "dlq",
        "list",
        "--config",
        str(stack.config),
        env={"DATASTORE__BROKER__URL": "amqp://guest:s3cret@127.0.0.1:1/"},
    )
    assert code == 1
    assert err.startswith("datastore-ops: error: cannot reach the broker at 127.0.0.1:1")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "s3cret" not in err
