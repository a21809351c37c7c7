"""The XRootD client: stat, checksum, list (a folder, or a whole tree), mkdir and remove over
the root:// protocol.

Built on the ``XRootD.client`` bindings' asynchronous calls: each request is handed to the
XRootD client threads with a callback that resolves an asyncio future, so hundreds of
requests can be in flight without blocking the event loop or holding a thread each.
Wire failures become :mod:`datastore_common.errors` types (see :func:`error_for_status`).
URLs are read with :mod:`datastore_common.adapters.xrootd.urls`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from XRootD import client as _untyped_client  # no type information: kept behind Any

from datastore_common.adapters.xrootd.urls import XRootDUrl, join_url, split_url
from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DatastoreError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
)

_xrootd: Any = _untyped_client
_flags: Any = _untyped_client.flags


# Client-side status codes (XrdClStatus.hh).
_CLIENT_SOCKET_TIMEOUT = 103
_CLIENT_OPERATION_EXPIRED = 206
_CLIENT_AUTH_FAILED = (203, 204)
_CLIENT_SERVER_ERROR_RESPONSE = 400
# Server error numbers carried by an error response (XProtocol.hh, kXR_*).
_SERVER_NOT_FOUND = 3011
_SERVER_NOT_AUTHORIZED = 3010
_SERVER_AUTH_FAILED = 3030
_SERVER_ITEM_EXISTS = 3018
_SERVER_TIMED_OUT = (3034, 3035)
_SERVER_BAD_REQUEST = (3000, 3001, 3002, 3005, 3006, 3013, 3015, 3016, 3025, 3031)


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    is_dir: bool
    mtime: int
    """Seconds since the epoch."""


def error_for_status(
    code: int, errno: int, message: str, *, operation: str, url: str
) -> DatastoreError:
    """The Datastore error for a failed XRootD status (client ``code``, server ``errno``)."""
    text = f"xrootd {operation} {url}: {message.strip()}"
    if code == _CLIENT_SERVER_ERROR_RESPONSE:
        if errno == _SERVER_NOT_FOUND:
            return NotFoundError(text)
        if errno == _SERVER_NOT_AUTHORIZED:
            return ForbiddenError(text)
        if errno == _SERVER_AUTH_FAILED:
            return AuthenticationError(text)
        if errno == _SERVER_ITEM_EXISTS:
            return AlreadyExistsError(text)
        if errno in _SERVER_TIMED_OUT:
            return PeerTimeoutError(text)
        if errno in _SERVER_BAD_REQUEST:
            return InvalidRequestError(text)
        return PeerUnavailableError(text)  # I/O error, no space, overloaded, server error
    if code in (_CLIENT_SOCKET_TIMEOUT, _CLIENT_OPERATION_EXPIRED):
        return PeerTimeoutError(text)
    if code in _CLIENT_AUTH_FAILED:
        return AuthenticationError(text)
    return PeerUnavailableError(text)  # connection refused/reset, handshake, redirects


def parse_checksum_answer(answer: bytes | str, *, algorithm: str = "adler32") -> str:
    """The server's ``b"adler32 1a2b3c4d\\x00"`` -> ``"adler32:1a2b3c4d"`` (8 hex digits)."""
    text = answer.decode() if isinstance(answer, bytes) else answer
    name, _, value = text.strip("\x00 \n").partition(" ")
    value = value.strip().lower()
    if name.lower() != algorithm or not value or any(c not in "0123456789abcdef" for c in value):
        raise InvalidRequestError(f"unexpected {algorithm} checksum answer: {text!r}")
    return f"{algorithm}:{value.zfill(8)}"


def tune_client(*, connection_retry: int = 1, timeout_resolution_seconds: int = 1) -> None:
    """Process-wide XRootD client settings. The defaults of the library retry a refused
    connection 5 times, 120 s apart, and check time-outs only every 15 s: a down peer would
    look like a slow one. Takes effect for connections made after the call."""
    _xrootd.EnvPutInt("ConnectionRetry", connection_retry)
    _xrootd.EnvPutInt("TimeoutResolution", timeout_resolution_seconds)


#: A server computes this many checksums at once by default (``xrootd.chksum`` without
#: ``max``), queues three times as many and answers "wait 30 s" beyond that.
DEFAULT_CHECKSUM_CONCURRENCY = 4
#: Conservative server-side adler32 rate: a checksum's time-out grows with the file's size.
DEFAULT_CHECKSUM_BYTES_PER_SECOND = 50 * 1024**2
#: Any checksum may first wait behind a full server queue ("wait 30 s", possibly twice).
CHECKSUM_TIMEOUT_FLOOR_SECONDS = 120


def checksum_timeout(
    size: int | None,
    *,
    floor: int = CHECKSUM_TIMEOUT_FLOOR_SECONDS,
    bytes_per_second: int = DEFAULT_CHECKSUM_BYTES_PER_SECOND,
) -> int:
    """Seconds to allow a server-side checksum of ``size`` bytes (unknown size: the floor).

    A 50 GB file at 50 MiB/s needs ~16 min: a fixed 30 s time-out would fail it every time.
    """
    if size is None or size <= 0:
        return floor
    return floor + -(-size // bytes_per_second)


class XRootDClient:
    """Asynchronous file-system operations on any number of XRootD servers.

    Checksum queries are bounded per server (``checksum_concurrency``): a server runs only a
    few at once and answers the rest with "wait", so flooding it makes every query slower
    and, past its queue, each one wait 30 s. The bound is per process; several processes
    sharing one server should keep the sum within the server's ``xrootd.chksum max``.
    """

    def __init__(
        self,
        *,
        timeout_seconds: int = 30,
        checksum_concurrency: int = DEFAULT_CHECKSUM_CONCURRENCY,
        checksum_bytes_per_second: int = DEFAULT_CHECKSUM_BYTES_PER_SECOND,
        tune: bool = True,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._checksum_concurrency = checksum_concurrency
        self._checksum_bytes_per_second = checksum_bytes_per_second
        self._checksum_slots: dict[str, asyncio.Semaphore] = {}
        self._file_systems: dict[str, Any] = {}
        if tune:
            tune_client()

    async def stat(self, url: str) -> FileStat | None:
        """Size, type and mtime, or None when nothing is at ``url``."""
        location = split_url(url)
        try:
            info = await self._call("stat", location, location.path)
        except NotFoundError:
            return None
        return FileStat(
            size=int(info.size),
            is_dir=bool(int(info.flags) & int(_flags.StatInfoFlags.IS_DIR)),
            mtime=int(info.mtime),
        )

    async def exists(self, url: str) -> bool:
        return await self.stat(url) is not None

    async def checksum(self, url: str, *, size: int | None = None) -> str:
        """``"adler32:<8 hex>"`` computed by the server (``xrootd.chksum adler32``); ``size``
        (when known) lengthens the time-out for large files."""
        location = split_url(url)
        timeout = checksum_timeout(size, bytes_per_second=self._checksum_bytes_per_second)
        slots = self._checksum_slots.get(location.server)
        if slots is None:
            slots = self._checksum_slots[location.server] = asyncio.Semaphore(
                self._checksum_concurrency
            )
        async with slots:
            answer = await self._call(
                "query",
                location,
                _flags.QueryCode.CHECKSUM,
                location.path,
                xrootd_timeout=max(timeout, self._timeout_seconds),
            )
        return parse_checksum_answer(answer)

    async def mkdir(self, url: str, *, parents: bool = True) -> None:
        """Create a folder; with ``parents`` also its missing parents, and an existing folder
        is fine."""
        location = split_url(url)
        flags = _flags.MkDirFlags.MAKEPATH if parents else _flags.MkDirFlags.NONE
        await self._call("mkdir", location, location.path, flags, 0o755)

    async def listdir(self, url: str) -> list[str]:
        """Names of the entries of a folder, sorted."""
        location = split_url(url)
        listing = await self._call("dirlist", location, location.path)
        return sorted(str(entry.name) for entry in listing) if listing is not None else []

    async def list_tree(self, url: str, *, concurrency: int = 16) -> dict[str, int]:
        """Every file below the folder ``url``, at any depth, by its path relative to it,
        with its size; {} when the folder does not exist. Folders are listed breadth-first,
        ``concurrency`` listings (or stats) at once. Sizes come with the listing (``STAT``);
        an entry without them (the bindings' asynchronous listing may leave them out) is
        stat'ed on its own."""
        root = split_url(url)
        slots = asyncio.Semaphore(concurrency)
        files: dict[str, int] = {}

        async def kind_and_size(path: str) -> tuple[bool, int] | None:
            async with slots:
                stat = await self.stat(join_url(root.server, path))
            return None if stat is None else (stat.is_dir, stat.size)

        async def visit(relative: str) -> None:
            path = f"{root.path.rstrip('/')}/{relative}" if relative else root.path
            folder = XRootDUrl(root.server, path)
            async with slots:
                try:
                    listing = await self._call("dirlist", folder, path, _flags.DirListFlags.STAT)
                except NotFoundError:  # removed meanwhile, or no such root: nothing below
                    return
            entries = [] if listing is None else list(listing)
            found = await asyncio.gather(
                *(_entry_kind(entry) or kind_and_size(f"{path}/{entry.name}") for entry in entries)
            )
            below = []
            for entry, kind in zip(entries, found, strict=True):
                if kind is None:  # gone between the listing and the stat
                    continue
                name = f"{relative}/{entry.name}" if relative else str(entry.name)
                is_dir, size = kind
                if is_dir:
                    below.append(name)
                else:
                    files[name] = size
            await asyncio.gather(*(visit(name) for name in below))

        await visit("")
        return dict(sorted(files.items()))

    async def remove(self, url: str) -> None:
        """Remove a file (NotFoundError when missing)."""
        location = split_url(url)
        await self._call("rm", location, location.path)

    async def rmdir(self, url: str) -> None:
        """Remove an empty folder."""
        location = split_url(url)
        await self._call("rmdir", location, location.path)

    def _file_system(self, server: str) -> Any:
        file_system = self._file_systems.get(server)
        if file_system is None:
            file_system = self._file_systems[server] = _xrootd.FileSystem(server)
        return file_system

    async def _call(
        self, method: str, location: XRootDUrl, *arguments: Any, xrootd_timeout: int | None = None
    ) -> Any:
        """Submit ``FileSystem.<method>(*arguments)`` asynchronously and await its callback
        on our loop."""
        timeout = xrootd_timeout or self._timeout_seconds
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        def settle(status: Any, response: Any) -> None:
            if not answer.done():
                answer.set_result((status, response))

        def on_reply(status: Any, response: Any, _hosts: Any) -> None:
            # Runs on an XRootD client thread.
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(settle, status, response)

        file_system = self._file_system(location.server)
        submit = getattr(file_system, method)
        submitted = submit(*arguments, timeout=timeout, callback=on_reply)
        if not submitted.ok:
            raise _error(submitted, method, location)
        try:
            # The client enforces its own time-out; this one only guards against a lost callback.
            status, response = await asyncio.wait_for(answer, timeout + 30)
        except TimeoutError as exc:
            raise PeerTimeoutError(f"xrootd {method} {location}: no answer") from exc
        if not status.ok:
            raise _error(status, method, location)
        return response


def _entry_kind(entry: Any) -> Awaitable[tuple[bool, int] | None] | None:
    """(is a folder, size) of a listing entry that came with its stat, as an awaitable;
    None when it came without."""
    info = getattr(entry, "statinfo", None)
    if not info:
        return None
    is_dir = bool(int(info.flags) & int(_flags.StatInfoFlags.IS_DIR))
    return _ready((is_dir, int(info.size)))


async def _ready(value: tuple[bool, int]) -> tuple[bool, int] | None:
    return value


def _error(status: Any, operation: str, location: XRootDUrl) -> DatastoreError:
    code, errno, message = int(status.code), int(status.errno), str(status.message)
    return error_for_status(code, errno, message, operation=operation, url=str(location))
