"""How every worker is composed, started, run and stopped: one pattern for all of them.

A service's ``bootstrap(settings, **overrides) -> Service`` binds its handlers to their
adapters, building from ``settings`` (and the bus) every adapter it was not given, and owning
the clean-up of exactly those it built (``Owned``). Its ``Service`` names the bound handlers
(tests call them directly), declares its ``routes`` as data (which queue role each handler
consumes, with which reporting) and says how to ``close`` what it built.

``Worker(name, bootstrap)`` is the process: ``run`` connects the bus, bootstraps the service on
it, subscribes every route (``subscribe``: the payload types come from ``topology.QUEUES``),
runs until SIGTERM/SIGINT and stops the consumers before closing the service's adapters.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from datastore_common.adapters.rabbitmq.bus import Bus
from datastore_common.adapters.rabbitmq.consumer import (
    AlreadyApplied,
    BatchHandler,
    GiveUpHandler,
    Handler,
    RefusalHandler,
    RetryHandler,
)
from datastore_common.domain.senders import InstrumentGrant, SenderPolicy, publishers_by_type
from datastore_common.errors import ConfigurationError
from datastore_common.logging import configure_logging, get_logger
from datastore_common.metrics import UP, start_metrics_server
from datastore_common.settings import DatastoreSettings, refusing_to_start
from datastore_common.topology import (
    PUBLISHERS,
    Topology,
    datastore_topology,
    payload_types,
    retries_for,
)

log = get_logger(__name__)

Cleanup = Callable[[], Awaitable[None]]
#: A loop a service runs beside its consumers until cancelled.
BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]


async def nothing() -> None:
    """The clean-up of a service that built nothing (and the start-up of one with no checks)."""


@dataclass(frozen=True)
class Route:
    """One queue a service consumes: the queue's role (``topology.QUEUES``), its handler (one
    message at a time, or ``batch_handler`` for batches) and how failures are reported."""

    queue: str
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    #: Batches: at most this many messages, gathered for at most ``max_wait`` seconds.
    max_batch: int = 100
    max_wait: float = 0.5
    #: Messages held at once (default: ``broker.prefetch``); one-by-one handlers only.
    prefetch: int | None = None
    on_give_up: GiveUpHandler | None = None
    on_retry: RetryHandler | None = None
    #: Told of a message refused before the handler (unreadable, or from a sender who may
    #: not send it), before it is dead-lettered.
    on_refused: RefusalHandler | None = None
    #: One-by-one handlers only: messages this service already applied (by message id),
    #: acked without being read (``consumer.AlreadyApplied``).
    already_applied: AlreadyApplied | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.batch_handler is None):
            raise ValueError(f"route {self.queue}: give a handler or a batch_handler")
        if self.batch_handler is not None and self.already_applied is not None:
            raise ValueError(f"route {self.queue}: already_applied is for one-by-one handlers")


async def subscribe(bus: Bus, route: Route) -> None:
    """Consume ``route``'s queue under the bus's ack policy."""
    queue = bus.topology.queue(route.queue)
    accepted = payload_types(route.queue)
    if route.batch_handler is not None:
        await bus.consume_batches(
            queue,
            route.batch_handler,
            accepted,
            max_batch=route.max_batch,
            max_wait=route.max_wait,
            on_give_up=route.on_give_up,
            on_retry=route.on_retry,
            on_refused=route.on_refused,
        )
        return
    assert route.handler is not None
    await bus.consume(
        queue,
        route.handler,
        accepted,
        on_give_up=route.on_give_up,
        on_retry=route.on_retry,
        on_refused=route.on_refused,
        prefetch=route.prefetch,
        already_applied=route.already_applied,
    )


@dataclass(frozen=True, kw_only=True)
class Service:
    """What a ``bootstrap`` returns. Each service's subclass adds its bound handlers by name."""

    routes: tuple[Route, ...]
    #: Closes the adapters ``bootstrap`` built (never those it was given).
    close: Cleanup = nothing
    #: Awaited once before any route is subscribed: start-up checks and their log lines.
    before_start: Cleanup = nothing
    #: Loops run beside the consumers once they are subscribed (the status-poller's audit),
    #: cancelled before the adapters are closed. Each handles its own failures.
    background: tuple[BackgroundLoop, ...] = ()


#: ``bootstrap(settings, *, bus=None, **overrides) -> Service``: each service's own keywords.
Bootstrap = Callable[..., Service]


class Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=Closable)


@dataclass
class Owned:
    """The clean-up of what a bootstrap built itself, run in reverse order by ``close``."""

    _closers: list[Cleanup] = field(default_factory=list)

    def add(self, close: Cleanup) -> None:
        self._closers.append(close)

    def adapter(self, built: C) -> C:
        """``built``, to be closed (``aclose``) with the service."""
        self.add(built.aclose)
        return built

    async def close(self) -> None:
        while self._closers:
            await self._closers.pop()()


def required(bus: Bus | None, what: str) -> Bus:
    """The bus to build ``what`` on, when a bootstrap was given neither."""
    if bus is None:
        raise ConfigurationError(f"bootstrap: pass {what}, or the bus to build it on")
    return bus


def topology_from(settings: DatastoreSettings) -> Topology:
    return datastore_topology(
        exchange=settings.broker.exchange,
        queue_prefix=settings.broker.queue_prefix,
        poll_interval=settings.poller.interval_seconds,
        retry_delays=settings.broker.retry_delays,
        delivery_limit=settings.broker.delivery_limit,
        max_retries=retries_for(settings.broker.retry_delays, settings.broker.retry_for_seconds),
    )


def sender_policy(settings: DatastoreSettings) -> SenderPolicy:
    """Who may send what to this process's consumers (``domain.senders``), from the config."""
    return SenderPolicy(
        users=dict(settings.broker.users),
        publishers=publishers_by_type(PUBLISHERS),
        instruments={
            account.broker_user: InstrumentGrant(
                account.broker_user, account.icat_user, frozenset(account.instruments)
            )
            for account in settings.instruments
        },
        own_user=settings.broker.user,
    )


def make_bus(settings: DatastoreSettings, service: str) -> Bus:
    return Bus(
        settings.broker.url.get_secret_value(),
        topology_from(settings),
        source=service,
        prefetch=settings.broker.prefetch,
        senders=sender_policy(settings),
    )


@dataclass(frozen=True)
class Worker:
    """A worker process: its service's name (the bus source, the log and metrics label) and
    its bootstrap."""

    name: str
    bootstrap: Bootstrap

    async def wire(self, bus: Bus, settings: DatastoreSettings, **overrides: Any) -> Cleanup:
        """Bootstrap on ``bus`` and subscribe every route; returns what closes the service's
        adapters (the caller closes the bus, first)."""
        service = self.bootstrap(settings, bus=bus, **overrides)
        try:
            await service.before_start()
            for route in service.routes:
                await subscribe(bus, route)
        except BaseException:
            await service.close()
            raise
        loops: list[asyncio.Task[None]] = [
            asyncio.create_task(loop(), name=f"{self.name}-background-{index}")
            for index, loop in enumerate(service.background)
        ]

        async def close() -> None:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await service.close()

        return close

    async def serve(self, settings: DatastoreSettings) -> None:
        """Connect, wire, run until SIGTERM/SIGINT, stop gracefully."""
        configure_logging(self.name, level=settings.log.level, fmt=settings.log.format)
        start_metrics_server(settings.metrics_port, address=str(settings.metrics_address))
        UP.labels(service=self.name).set(0)
        bus = make_bus(settings, self.name)
        await bus.connect(attempts=settings.broker.connect_attempts)
        try:
            close = await self.wire(bus, settings)
        except BaseException:
            await bus.close()
            raise
        UP.labels(service=self.name).set(1)
        log.info("worker_started", exchange=settings.broker.exchange)

        async def stop() -> None:
            UP.labels(service=self.name).set(0)
            await bus.close()  # consumers first: no handler runs on a closed adapter
            await close()
            log.info("worker_stopped")

        await run_until_signalled([stop])

    def run(self, settings: DatastoreSettings) -> None:
        with refusing_to_start(f"datastore-{self.name}"):
            asyncio.run(self.serve(settings))


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
