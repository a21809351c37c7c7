"""XRootD operations in-process through the XRootD Python bindings (``XRootD.client``).

Every call uses the bindings' asynchronous form (a callback run on an XrdCl thread) resolved
as an asyncio future on the event loop, so hundreds of stats, checksums and copies can be in
flight at once without a thread or a subprocess each.

Third-party copy speaks the XRootD TPC protocol itself, as ``xrdcp --tpc only`` does
(XrdClThirdPartyCopyJob): open the destination with the ``tpc.*`` rendezvous CGI, ``sync`` it
(rendezvous), open the source with the same key, ``sync`` the destination again (the
destination server now pulls the bytes from the source server with its ``ofs.tpc pgm``) and
wait for that sync's answer. XrdCl's own copy job waits for the answer in a fixed
``XrdSysTimer::Wait(2500)`` loop, which made every copy, however small, take >= 2.5 s; here the
answer is taken the moment it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from XRootD.client.file import File
from XRootD.client.filesystem import FileSystem
from XRootD.client.flags import MkDirFlags, OpenFlags, PrepareFlags, QueryCode

# XRootD server error numbers (XProtocol.hh)
_NOT_FOUND = {3011}  # kXR_NotFound
_EXISTS = {3018}  # kXR_ItExists
_NO_INFO = "No information available"  # the prepare plugin's answer overflowed its buffer


class XrootdError(RuntimeError):
    """A call failed; ``message`` is XRootD's own error text."""

    def __init__(self, message: str, *, not_found: bool = False, errno: int = 0) -> None:
        super().__init__(message)
        self.not_found = not_found
        self.errno = errno


@dataclass(frozen=True)
class XrootdUrl:
    server: str  # root://127.0.0.1:11094
    path: str  # /absolute/path

    @classmethod
    def parse(cls, url: str) -> XrootdUrl:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in {"root", "xroot", "roots", "xroots"}:
            raise XrootdError(f"Unsupported protocol in {url}")
        host, _, path = rest.partition("/")
        return cls(server=f"{scheme}://{host}", path="/" + path.split("?", 1)[0].lstrip("/"))

    @property
    def host_port(self) -> str:
        return self.server.split("://", 1)[1]

    def __str__(self) -> str:
        return f"{self.server}/{self.path}"


@dataclass(frozen=True)
class PrepareStatus:
    path_exists: bool
    on_tape: bool
    online: bool
    error_text: str


def _error(status: Any, what: str) -> XrootdError:
    message = str(getattr(status, "message", "") or "").strip()
    errno = int(getattr(status, "errno", 0) or 0)
    not_found = errno in _NOT_FOUND or "no such file" in message.lower()
    return XrootdError(
        f"{what}: {message} [{errno}]" if errno else f"{what}: {message}",
        not_found=not_found,
        errno=errno,
    )


class XrootdTools:
    """Async XRootD client operations; one instance per emulator (connections are shared by
    XrdCl per server)."""

    def __init__(self, command_timeout: float = 60.0) -> None:
        self.command_timeout = command_timeout
        self._filesystems: dict[str, FileSystem] = {}

    def _fs(self, server: str) -> FileSystem:
        fs = self._filesystems.get(server)
        if fs is None:
            fs = self._filesystems[server] = FileSystem(server)  # type: ignore[no-untyped-call]
        return fs

    async def _call(
        self,
        method: Callable[..., Any],
        *args: Any,
        what: str,
        limit: float | None = None,
        settle: bool = True,
    ) -> Any:
        """Run an asynchronous bindings call; returns its response or raises XrootdError.

        XrdCl cannot withdraw a request: when the caller is cancelled the request still runs
        on the server, so with ``settle`` the cancellation waits for its answer first (an
        open then really has happened, and the caller's clean-up can close and remove)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        def resolve(status: Any, response: Any) -> None:
            if not future.done():
                future.set_result((status, response))

        def callback(status: Any, response: Any, _hosts: Any = None) -> None:
            loop.call_soon_threadsafe(resolve, status, response)

        limit = limit or self.command_timeout
        started = method(*args, timeout=max(1, int(limit)), callback=callback)
        if started is not None and not getattr(started, "ok", True):
            raise _error(started, what)
        # XrdCl enforces the time-out itself; the extra margin only guards against a lost
        # callback.
        try:
            status, response = await asyncio.wait_for(asyncio.shield(future), limit + 30)
        except asyncio.CancelledError:
            if settle:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(future, limit + 30)
            raise
        if not status.ok:
            raise _error(status, what)
        return response

    # --- namespace ------------------------------------------------------------------------
    async def stat(self, url: str) -> Any | None:
        """StatInfo, or None when the file does not exist."""
        parsed = XrootdUrl.parse(url)
        try:
            return await self._call(self._fs(parsed.server).stat, parsed.path, what=f"stat {url}")
        except XrootdError as error:
            if error.not_found:
                return None
            raise

    async def exists(self, url: str) -> bool:
        return await self.stat(url) is not None

    async def size(self, url: str) -> int | None:
        info = await self.stat(url)
        return None if info is None else int(info.size)

    async def adler32(self, url: str) -> str:
        parsed = XrootdUrl.parse(url)
        out = await self._call(
            self._fs(parsed.server).query, QueryCode.CHECKSUM, parsed.path, what=f"checksum {url}"
        )
        text = (out or b"").decode(errors="replace").strip("\x00 \n")
        algorithm, _, value = text.partition(" ")
        if algorithm.lower() != "adler32" or not value:
            raise XrootdError(f"Unexpected checksum answer: {text}")
        return value.strip().lower().zfill(8)

    async def remove(self, url: str) -> None:
        parsed = XrootdUrl.parse(url)
        with contextlib.suppress(XrootdError):
            await self._call(self._fs(parsed.server).rm, parsed.path, what=f"rm {url}")

    async def make_parent(self, url: str) -> None:
        parsed = XrootdUrl.parse(url)
        parent = posixpath.dirname(parsed.path)
        if parent and parent != "/":
            try:
                await self._call(
                    self._fs(parsed.server).mkdir,
                    parent,
                    MkDirFlags.MAKEPATH,
                    what=f"mkdir {parent}",
                )
            except XrootdError as error:
                if error.errno not in _EXISTS and "exists" not in str(error):
                    raise

    # --- third-party copy -----------------------------------------------------------------
    async def third_party_copy(
        self, source: str, destination: str, *, time_limit: float, size_hint: int | None = None
    ) -> None:
        """The destination server pulls the file from the source server (XRootD TPC).

        Parent folders of the destination are created by the open (``MAKEPATH``); an existing
        destination is replaced (``DELETE``, as ``--force``). Cancelling the task cancels the
        server-side copy (``ofs.tpc cancel``) and closes both files.
        """
        src, dst = XrootdUrl.parse(source), XrootdUrl.parse(destination)
        key = secrets.token_hex(12)
        cgi = (
            f"tpc.dlg={src.host_port}&tpc.dlgon=0&tpc.key={key}&tpc.lfn={src.path}"
            f"&tpc.spr={src.server.split('://')[0]}&tpc.src={_tpc_host(src.host_port)}"
            f"&tpc.stage=copy&tpc.str=1&tpc.tpr={dst.server.split('://')[0]}"
        )
        if size_hint is not None:
            cgi = f"oss.asize={int(size_hint)}&{cgi}"
        dst_file, src_file = File(), File()  # type: ignore[no-untyped-call]
        dst_open = src_open = started = False
        setup = min(self.command_timeout, time_limit)
        try:
            # The source learns the rendezvous key first, so it is there whenever the
            # destination's copy program arrives.
            dst_host = _tpc_host(dst.host_port.rsplit(":", 1)[0])
            src_open = True
            await self._call(
                src_file.open,
                f"{src.server}/{src.path}?tpc.dst={dst_host}&tpc.key={key}&tpc.stage=copy",
                OpenFlags.READ,
                what=f"open source {source}",
                limit=setup,
            )
            dst_open = True
            await self._call(
                dst_file.open,
                f"{dst.server}/{dst.path}?{cgi}",
                OpenFlags.DELETE | OpenFlags.UPDATE | OpenFlags.MAKEPATH,
                0o644,
                what=f"open destination {destination}",
                limit=setup,
            )
            # The first sync starts the server's copy program (XrdOfsTPCJob::Sync), the
            # second one answers when it has finished.
            started = True
            await self._call(dst_file.sync, what="tpc rendezvous", limit=setup)
            await self._call(dst_file.sync, what="third-party copy", limit=time_limit, settle=False)
        except (TimeoutError, asyncio.CancelledError):
            if started:
                await asyncio.shield(self._cancel_tpc(dst_file))
            raise
        finally:
            closes = []
            if src_open:
                closes.append(self._quiet_close(src_file))
            if dst_open:
                closes.append(self._quiet_close(dst_file))
            if closes:
                await asyncio.shield(asyncio.gather(*closes))

    async def streamed_copy(
        self, source: str, destination: str, *, time_limit: float, chunk_size: int = 8 << 20
    ) -> int:
        """Two-party copy through this process: read the source, write the destination
        (parent folders made by the open, an existing file replaced). Returns bytes moved.

        Used for small files: it needs no program start on the destination server (each
        server-side ``xrdcp --server`` costs a process start and, on this host, reverse DNS
        look-ups that stall now and then for the resolver's 5 s)."""
        return await asyncio.wait_for(
            self._streamed_copy(source, destination, chunk_size), time_limit
        )

    async def _streamed_copy(self, source: str, destination: str, chunk_size: int) -> int:
        src_file, dst_file = File(), File()  # type: ignore[no-untyped-call]
        src_open = dst_open = False
        moved = 0
        try:
            src_open = True
            await self._call(src_file.open, source, OpenFlags.READ, what=f"open source {source}")
            dst_open = True
            await self._call(
                dst_file.open,
                destination,
                OpenFlags.DELETE | OpenFlags.UPDATE | OpenFlags.MAKEPATH,
                0o644,
                what=f"open destination {destination}",
            )
            while True:
                data = await self._call(src_file.read, moved, chunk_size, what=f"read {source}")
                if not data:
                    break
                await self._call(dst_file.write, data, moved, what=f"write {destination}")
                moved += len(data)
                if len(data) < chunk_size:
                    break
            dst_open = False
            await self._call(dst_file.close, what=f"close {destination}")
        finally:
            closes = []
            if src_open:
                closes.append(self._quiet_close(src_file))
            if dst_open:
                closes.append(self._quiet_close(dst_file))
            if closes:
                await asyncio.shield(asyncio.gather(*closes))
        return moved

    async def _cancel_tpc(self, dst_file: File) -> None:
        with contextlib.suppress(Exception):
            await self._call(dst_file.fcntl, "ofs.tpc cancel", what="tpc cancel", limit=10)

    async def _quiet_close(self, handle: File) -> None:
        with contextlib.suppress(Exception):
            await self._call(handle.close, what="close", limit=30)

    # --- tape -----------------------------------------------------------------------------
    async def stage(self, server: str, paths: list[str]) -> str:
        """``prepare -s`` for several files of one server; returns the request id."""
        out = await self._call(
            self._fs(server).prepare, paths, PrepareFlags.STAGE, what=f"prepare on {server}"
        )
        text = (out or b"").decode(errors="replace").strip("\x00 \n")
        request_id = text.splitlines()[-1].strip() if text else ""
        if not request_id:
            raise XrootdError("prepare returned no request id")
        return request_id

    async def query_prepare(
        self, server: str, request_id: str, paths: list[str]
    ) -> dict[str, PrepareStatus]:
        """``query prepare``: per path, whether it exists, is on tape and is online.

        The server's answer must fit a ~2 KB buffer (about 8 paths); callers batch. An
        overflowing answer ("No information available") raises ValueError.
        """
        arg = "\n".join([request_id, *paths])
        out = await self._call(
            self._fs(server).query, QueryCode.PREPARE, arg, what=f"query prepare on {server}"
        )
        # The server reuses its answer buffer: a short answer can arrive followed by a NUL and
        # the tail of an earlier, longer one. Only the first JSON document is the answer.
        text = (out or b"").split(b"\x00", 1)[0].decode(errors="replace").strip()
        if text.startswith(_NO_INFO):
            raise ValueError(f"query prepare answer too long for {len(paths)} paths")
        answer: dict[str, Any] = json.JSONDecoder().raw_decode(text)[0]
        statuses = {}
        for response in answer.get("responses", []):
            path = "/" + str(response.get("path", "")).split("?", 1)[0].lstrip("/")
            statuses[path] = PrepareStatus(
                path_exists=bool(response.get("path_exists", False)),
                on_tape=bool(response.get("on_tape", False)),
                online=bool(response.get("online", False)),
                error_text=str(response.get("error_text") or ""),
            )
        return statuses


def _tpc_host(host: str) -> str:
    """Write IPv4 loopback the way XrdCl does in the TPC CGI (``[::ffff:127.0.0.1]``)."""
    return host.replace("127.0.0.1", "[::ffff:127.0.0.1]")
