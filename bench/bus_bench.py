"""Bus throughput: our publish/consume layer against raw aio-pika doing the same work.

Both sides publish the same envelopes (JSON, persistent, mandatory, publisher confirms, the
same number in flight) and consume them with an ack after the handler (validating each body
into its pydantic model). Rounds alternate between the two so machine noise hits both; the
figure is the median of each side and their ratio. Writes bench/results/bus.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.declare import delete_topology
from datastore_common.messages import PAYLOAD_TYPES, Envelope, TransferStatus, wrap
from datastore_common.topology import QueueSpec, Topology, all_queue_names

URL = "amqp://guest:guest@127.0.0.1:5672/"


def envelopes(count: int) -> list[Envelope[Any]]:
    return [
        wrap(
            TransferStatus(
                request_id="bench",
                kind="archive",
                job_id=f"job-{i}",
                fts_endpoint="https://fts",
                job_state="ACTIVE",
            ),
            source="bench",
            correlation_id="bench",
        )
        for i in range(count)
    ]


async def in_windows(coros: list[Any], window: int) -> None:
    for start in range(0, len(coros), window):
        await asyncio.gather(*coros[start : start + window])


async def ours(messages: list[Envelope[Any]], window: int) -> tuple[float, float]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    topology = Topology(exchange=name, queues=(QueueSpec(f"{name}.q", (TransferStatus.TYPE,)),))
    bus = Bus(URL, topology, source="bench", prefetch=window)
    await bus.connect()
    try:
        started = time.perf_counter()
        await in_windows([bus.publish(m) for m in messages], window)
        publish_rate = len(messages) / (time.perf_counter() - started)

        done = asyncio.Event()
        seen = 0

        async def handler(envelope: Envelope[Any]) -> None:
            nonlocal seen
            seen += 1
            if seen == len(messages):
                done.set()

        started = time.perf_counter()
        await bus.consume(topology.queues[0].name, handler, PAYLOAD_TYPES)
        await done.wait()
        consume_rate = len(messages) / (time.perf_counter() - started)
    finally:
        await delete_topology(bus, all_queue_names(topology), [name, topology.dead_letter_exchange])
        await bus.close()
    return publish_rate, consume_rate


async def raw(messages: list[Envelope[Any]], window: int) -> tuple[float, float]:
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            f"{name}.q", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key=TransferStatus.TYPE)

        async def publish(envelope: Envelope[Any]) -> None:
            await exchange.publish(
                aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    message_id=str(envelope.id),
                    correlation_id=envelope.correlation_id,
                    type=envelope.type,
                ),
                routing_key=envelope.type,
                mandatory=True,
            )

        started = time.perf_counter()
        await in_windows([publish(m) for m in messages], window)
        publish_rate = len(messages) / (time.perf_counter() - started)

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=window)
        consume_queue = await consume_channel.get_queue(f"{name}.q")
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            Envelope[TransferStatus].model_validate_json(message.body)
            await message.ack()
            seen += 1
            if seen == len(messages):
                done.set()

        started = time.perf_counter()
        await consume_queue.consume(on_message)
        await done.wait()
        consume_rate = len(messages) / (time.perf_counter() - started)
        await channel.queue_delete(f"{name}.q")
        await channel.exchange_delete(name)
    finally:
        await connection.close()
    return publish_rate, consume_rate


async def measure(count: int, rounds: int, window: int) -> dict[str, Any]:
    messages = envelopes(count)
    results: dict[str, list[float]] = {
        k: [] for k in ("ours_pub", "ours_con", "raw_pub", "raw_con")
    }
    for round_index in range(rounds):
        # Alternate who goes first, so a warming broker or a busy neighbour favours neither.
        if round_index % 2 == 0:
            raw_pub, raw_con = await raw(messages, window)
            ours_pub, ours_con = await ours(messages, window)
        else:
            ours_pub, ours_con = await ours(messages, window)
            raw_pub, raw_con = await raw(messages, window)
        results["raw_pub"].append(raw_pub)
        results["raw_con"].append(raw_con)
        results["ours_pub"].append(ours_pub)
        results["ours_con"].append(ours_con)
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "benchmark": "bus",
        "messages_per_round": count,
        "rounds": rounds,
        "in_flight_window": window,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "publish_msgs_per_s": {
            "ours": round(med["ours_pub"]),
            "raw_aio_pika": round(med["raw_pub"]),
        },
        "consume_msgs_per_s": {
            "ours": round(med["ours_con"]),
            "raw_aio_pika": round(med["raw_con"]),
        },
        "ratio_publish_ours_over_raw": round(med["ours_pub"] / med["raw_pub"], 3),
        "ratio_consume_ours_over_raw": round(med["ours_con"] / med["raw_con"], 3),
        "goal": "each ratio >= 0.9",
        "samples": {k: [round(x) for x in v] for k, v in results.items()},
    }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--output", type=Path, default=Path("bench/results/bus.json"))
    args = parser.parse_args()
    report = asyncio.run(measure(args.messages, args.rounds, args.window))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
