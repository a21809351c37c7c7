"""The one way a worker process starts, runs and stops (used by every service's __main__)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.logging import configure_logging, get_logger
from datastore_common.metrics import UP, start_metrics_server
from datastore_common.settings import DatastoreSettings
from datastore_common.topology import Topology, datastore_topology, retries_for

log = get_logger(__name__)

Cleanup = Callable[[], Awaitable[None]]
Wiring = Callable[[Bus], Awaitable[Cleanup | None]]


def topology_from(settings: DatastoreSettings) -> Topology:
    return datastore_topology(
        exchange=settings.broker.exchange,
        queue_prefix=settings.broker.queue_prefix,
        poll_interval=settings.poller.interval_seconds,
        retry_delays=settings.broker.retry_delays,
        delivery_limit=settings.broker.delivery_limit,
        max_retries=retries_for(settings.broker.retry_delays, settings.broker.retry_for_seconds),
    )


def make_bus(settings: DatastoreSettings, service: str) -> Bus:
    return Bus(
        settings.broker.url.get_secret_value(),
        topology_from(settings),
        source=service,
        prefetch=settings.broker.prefetch,
    )


async def serve(service: str, settings: DatastoreSettings, wire: Wiring) -> None:
    """Connect, let ``wire`` subscribe handlers, run until SIGTERM/SIGINT, stop gracefully."""
    configure_logging(service, level=settings.log.level, fmt=settings.log.format)
    bus = make_bus(settings, service)
    await bus.connect(attempts=settings.broker.connect_attempts)
    cleanup = await wire(bus)
    start_metrics_server(settings.metrics_port, service=service)
    log.info("worker_started", exchange=settings.broker.exchange)

    async def stop() -> None:
        UP.labels(service=service).set(0)
        await bus.close()
        if cleanup is not None:
            await cleanup()
        log.info("worker_stopped")

    await run_until_signalled([stop])


def run(service: str, settings: DatastoreSettings, wire: Wiring) -> None:
    asyncio.run(serve(service, settings, wire))


async def run_until_signalled(stop_hooks: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Block until SIGTERM/SIGINT, then run the stop hooks in order (graceful stop)."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopping")
        for hook in stop_hooks:
            await hook()
