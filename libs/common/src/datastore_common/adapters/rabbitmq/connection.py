"""A robust connection to one node of a RabbitMQ cluster, moving to another when it goes.

aio-pika's ``RobustConnection`` reconnects after a connection drops and then restores every
channel it opened (QoS, publisher confirms), the exchanges and queues declared or fetched on
them, their bindings and their consumers, but always to its one URL. ``ClusterConnection``
keeps the node list (``domain.broker_nodes``): aio-pika calls ``_on_connection_close`` both when
an established connection drops and when an attempt to connect fails, and there it moves to the
next node, so that the next attempt (``reconnect_interval`` later) goes elsewhere. With one URL
it behaves exactly as ``RobustConnection``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import aio_pika
import aio_pika.abc
from aio_pika import RobustConnection
from yarl import URL

from datastore_common.domain.broker_nodes import NodeRotation, without_secret
from datastore_common.logging import get_logger

log = get_logger(__name__)

#: Seconds between two reconnection attempts (aio-pika's default is 5): a cluster has another
#: node ready at once, a single broker restarting is tried again soon.
RECONNECT_INTERVAL = 1.0
#: Seconds one attempt to reach a node may take: a node that does not answer at all (a host
#: gone, a firewall dropping packets) must not keep the others from being tried.
CONNECT_TIMEOUT = 10.0


class ClusterConnection(RobustConnection):
    """``RobustConnection`` over several nodes' URLs (same user and vhost on each)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        start: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        self.nodes = NodeRotation(tuple(urls), start)
        super().__init__(URL(self.nodes.url), loop=loop, **kwargs)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self.nodes.urls) > 1 and not (self.close_called or self.is_closed):
            left = self.nodes.url
            self.url = URL(self.nodes.advance())
            log.warning(
                "broker_node_changed",
                left=without_secret(left),
                next=without_secret(self.nodes.url),
            )
        await super()._on_connection_close(closing)

    @property
    def node(self) -> str:
        """The node this connection uses (or tries next), without credentials."""
        return without_secret(self.nodes.url)


#: How ``connect_cluster`` makes a connection (tests give a fake).
ConnectionFactory = Callable[..., ClusterConnection]


async def connect_cluster(
    urls: Sequence[str],
    *,
    start: int = 0,
    client_properties: dict[str, Any] | None = None,
    factory: ConnectionFactory = ClusterConnection,
) -> ClusterConnection:
    """Connect to the first node that answers, trying each once from ``start``; raise the last
    node's error when none does (the caller decides whether to try again)."""
    rotation = NodeRotation(tuple(urls), start)
    last: BaseException | None = None
    for url in rotation.from_current():
        connection = factory(
            urls,
            start=rotation.urls.index(url),
            client_properties=client_properties,
            reconnect_interval=RECONNECT_INTERVAL,
        )
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT)  # also each reconnection's
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:  # TimeoutError too
            last = exc
            log.info("broker_node_unavailable", node=without_secret(url), error=repr(exc))
            with contextlib.suppress(Exception):  # stop what is left of the failed attempt
                await connection.close()
            continue
        return connection
    assert last is not None
    raise last


async def connect_plain(
    urls: Sequence[str], *, connect_timeout: float | None = None, name: str | None = None
) -> aio_pika.abc.AbstractConnection:
    """One plain connection (no reconnecting) for a short-lived tool or client, to the first
    node that answers; the last node's error when none does."""
    last: BaseException | None = None
    for url in urls:
        try:
            return await aio_pika.connect(
                url,
                timeout=connect_timeout,
                client_properties={"connection_name": name} if name else None,
            )
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPConnectionError) as exc:
            last = exc
            log.info("broker_node_unavailable", node=without_secret(url), error=repr(exc))
    if last is None:
        raise ValueError("no broker URL to connect to")
    raise last
