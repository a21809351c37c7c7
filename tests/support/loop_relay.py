"""A TCP relay served by the test's own event loop, to prove a client does not block that loop.

A client under test talks to its server through :func:`loop_relay`. The relay moves bytes
only when the event loop runs, so a call that blocked the loop while waiting for its answer
would never get one (it fails on its own time-out); a call that completes proves the loop ran
all along. Unlike counting ticks of a background task, this cannot pass by luck or fail on a
slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class LoopRelay:
    port: int
    bytes_relayed: int = 0
    connections: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)


@contextlib.asynccontextmanager
async def loop_relay(host: str, port: int) -> AsyncIterator[LoopRelay]:
    """Listen on a free loopback port and relay every connection to ``host:port``."""
    relay = LoopRelay(port=0)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(1 << 16):
                relay.bytes_relayed += len(data)
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()

    async def serve(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            relay._tasks.add(task)
        relay._writers.append(client)
        try:
            server_reader, server = await asyncio.open_connection(host, port)
        except OSError:
            client.close()
            return
        relay._writers.append(server)
        relay.connections += 1
        try:
            await asyncio.gather(pipe(client_reader, server), pipe(server_reader, client))
        finally:
            for writer in (client, server):
                writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    relay.port = int(listener.sockets[0].getsockname()[1])
    try:
        yield relay
    finally:
        listener.close()
        for writer in relay._writers:  # clients may keep connections open (keep-alive)
            writer.close()
        if relay._tasks:  # closed transports end the pipes at once
            await asyncio.wait(relay._tasks, timeout=5)
        await listener.wait_closed()
