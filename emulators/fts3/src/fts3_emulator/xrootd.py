"""XRootD operations through the command-line tools (xrdfs, xrdcp) run as subprocesses.

Subprocesses keep the event loop free, can be killed on cancel, and use exactly the tools an
operator would use by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import posixpath
import signal
import sys
from dataclasses import dataclass
from typing import Any


class XrootdError(RuntimeError):
    """A command failed; ``message`` is the tool's own error text."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


def _die_with_parent() -> None:
    """Runs in the child before exec: a killed emulator must not leave copies writing on."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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
        return cls(server=f"{scheme}://{host}", path="/" + path.lstrip("/"))

    def __str__(self) -> str:
        return f"{self.server}/{self.path}"


@dataclass(frozen=True)
class PrepareStatus:
    path_exists: bool
    on_tape: bool
    online: bool
    error_text: str


class XrootdTools:
    def __init__(self, xrdfs: str = "xrdfs", xrdcp: str = "xrdcp",
                 command_timeout: float = 60.0) -> None:
        self.xrdfs = xrdfs
        self.xrdcp = xrdcp
        self.command_timeout = command_timeout

    async def _run(self, *argv: str, time_limit: float | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent)
        try:
            out, err = await asyncio.wait_for(process.communicate(),
                                              time_limit or self.command_timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
            raise
        return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def _xrdfs(self, url: XrootdUrl, *args: str) -> str:
        code, out, err = await self._run(self.xrdfs, url.server, *args)
        if code != 0:
            text = (err or out).strip()
            raise XrootdError(text, not_found="No such file" in text or "[3011]" in text)
        return out

    async def exists(self, url: str) -> bool:
        try:
            await self._xrdfs(XrootdUrl.parse(url), "stat", XrootdUrl.parse(url).path)
        except XrootdError as error:
            if error.not_found:
                return False
            raise
        return True

    async def size(self, url: str) -> int | None:
        parsed = XrootdUrl.parse(url)
        out = await self._xrdfs(parsed, "stat", parsed.path)
        for line in out.splitlines():
            if line.strip().startswith("Size:"):
                return int(line.split(":", 1)[1])
        return None

    async def adler32(self, url: str) -> str:
        parsed = XrootdUrl.parse(url)
        out = await self._xrdfs(parsed, "query", "checksum", parsed.path)
        algorithm, _, value = out.strip().partition(" ")
        if algorithm.lower() != "adler32" or not value:
            raise XrootdError(f"Unexpected checksum answer: {out.strip()}")
        return value.strip().lower().zfill(8)

    async def remove(self, url: str) -> None:
        parsed = XrootdUrl.parse(url)
        with contextlib.suppress(XrootdError):
            await self._xrdfs(parsed, "rm", parsed.path)

    async def make_parent(self, url: str) -> None:
        parsed = XrootdUrl.parse(url)
        parent = posixpath.dirname(parsed.path)
        if parent and parent != "/":
            try:
                await self._xrdfs(parsed, "mkdir", "-p", parent)
            except XrootdError as error:
                # XRootD 5.5 answers [3018] "file exists" to mkdir -p of an existing folder.
                if "[3018]" not in str(error) and "exists" not in str(error):
                    raise

    async def third_party_copy(self, source: str, destination: str, *,
                               time_limit: float) -> None:
        """``xrdcp --tpc only``: the destination server pulls from the source server."""
        code, out, err = await self._run(
            self.xrdcp, "--tpc", "only", "--silent", "--nopbar", "--force", source, destination,
            time_limit=time_limit)
        if code != 0:
            raise XrootdError((err or out).strip() or f"xrdcp exited with {code}")

    async def stage(self, server: str, paths: list[str]) -> str:
        """``xrdfs prepare -s`` for several files of one server; returns the request id."""
        out = await self._xrdfs(XrootdUrl(server, "/"), "prepare", "-s", *paths)
        request_id = out.strip().splitlines()[-1].strip() if out.strip() else ""
        if not request_id:
            raise XrootdError("prepare returned no request id")
        return request_id

    async def query_prepare(self, server: str, request_id: str,
                            paths: list[str]) -> dict[str, PrepareStatus]:
        """``xrdfs query prepare``: per path, whether it exists, is on tape and is online."""
        out = await self._xrdfs(XrootdUrl(server, "/"), "query", "prepare", request_id, *paths)
        answer: dict[str, Any] = json.loads(out)
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
