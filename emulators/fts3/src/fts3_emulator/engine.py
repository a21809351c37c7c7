"""The transfer engine: stages, copies (XRootD third-party copy), verifies and archives files.

All state lives in SQLite, so a restarted emulator picks every unfinished file up again: files
that were ACTIVE when it stopped go back to SUBMITTED, STAGING and ARCHIVING files are polled on.
The scheduler loop starts copies (at most ``concurrency`` at a time) whenever a copy ends or a
job arrives; a separate poll loop asks the storage about staging and archiving files, in
batches of ``query_batch`` paths per ``query prepare``, each file polled with a backoff from
``poll_interval`` up to ``poll_max_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fts3_emulator.config import EmulatorSettings
from fts3_emulator.states import (
    TIMESTAMP_FORMAT,
    derive_job_state,
    is_job_terminal,
    max_attempts,
    parse_user_checksum,
    terminal_job_reason,
    utc_now,
)
from fts3_emulator.store import Store
from fts3_emulator.xrootd import XrootdError, XrootdTools, XrootdUrl

CANCEL_CLEANUP_CHECKS = 25
CANCEL_CLEANUP_INTERVAL = 0.2  # seconds: 5 s of watching in all
log = logging.getLogger("fts3_emulator.engine")

ARCHIVE_QUERY_ID = "fts3-emulator-archive-monitor"  # query prepare needs an id; any will do


@dataclass
class TransferFailure(Exception):
    reason: str
    retryable: bool = True


def _parse_ts(text: str | None) -> datetime | None:
    return datetime.strptime(text, TIMESTAMP_FORMAT) if text else None


def _seconds_since(text: str | None) -> float:
    moment = _parse_ts(text)
    return (utc_now() - moment).total_seconds() if moment else 0.0


class TransferEngine:
    def __init__(
        self, store: Store, settings: EmulatorSettings, tools: XrootdTools | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.tools = tools or XrootdTools()
        self._copies: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._stopping = False
        # file_id -> (monotonic time of the next poll, polls made): staging/archiving backoff
        self._next_poll: dict[int, tuple[float, int]] = {}
        self._query_slots = asyncio.Semaphore(max(1, settings.query_parallel))

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.recover()
        self._loop_task = asyncio.create_task(self._run(), name="fts3-engine")
        self._poll_task = asyncio.create_task(self._poll_loop(), name="fts3-engine-polls")

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._copies.values())
        for loop_task in (self._loop_task, self._poll_task):
            if loop_task:
                loop_task.cancel()
                tasks.append(loop_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def recover(self) -> None:
        """Files caught mid-copy by a stop are copied again from scratch."""
        for entry in self.store.files_in_states(["ACTIVE", "READY"]):
            extra = entry["extra"]
            extra["restarted"] = True
            self.store.update_file(
                entry["file_id"], file_state="SUBMITTED", not_before=0, extra=json.dumps(extra)
            )
            log.info("file %s of job %s resumes after restart", entry["file_id"], entry["job_id"])

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        """Start copies: at once when woken (new job, copy ended, staged file), else every
        ``poll_interval`` (retries waiting for their ``retry_delay``)."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self._schedule_copies()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    async def _poll_loop(self) -> None:
        while not self._stopping:
            try:
                await asyncio.gather(self._poll_staging(), self._poll_archiving())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine poll pass failed")
            await asyncio.sleep(self.settings.poll_interval)

    def _due(self, entries: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """The files whose next staging/archiving poll is due."""
        due = []
        for entry in entries:
            next_at, _ = self._next_poll.get(entry["file_id"], (0.0, 0))
            if next_at <= now:
                due.append(entry)
        return due

    def _polled(self, file_id: int, now: float) -> None:
        _, polls = self._next_poll.get(file_id, (0.0, 0))
        delay = min(self.settings.poll_interval * (1.5**polls), self.settings.poll_max_interval)
        self._next_poll[file_id] = (now + delay, polls + 1)

    async def _query_batches(
        self, server: str, request_id: str, paths: list[str]
    ) -> dict[str, Any]:
        """``query prepare`` for many paths: batches of ``query_batch``, a few in flight; a
        batch whose answer overflows the server's buffer is split."""
        size = max(1, self.settings.query_batch)
        batches = [paths[i : i + size] for i in range(0, len(paths), size)]

        async def one(batch: list[str]) -> dict[str, Any]:
            try:
                async with self._query_slots:
                    return await self.tools.query_prepare(server, request_id, batch)
            except ValueError:
                if len(batch) == 1:
                    raise
                half = len(batch) // 2
                first, second = await asyncio.gather(one(batch[:half]), one(batch[half:]))
                return {**first, **second}

        statuses: dict[str, Any] = {}
        results = await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning(
                    "query prepare of %d paths on %s failed: %s", len(batch), server, result
                )
                continue
            statuses.update(result)
        return statuses

    # --- job bookkeeping ------------------------------------------------------------------
    def refresh_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or is_job_terminal(job["job_state"]):
            return
        state = derive_job_state(self.store.file_states_of(job_id))
        if state == job["job_state"]:
            return
        if is_job_terminal(state):
            self.store.update_job(
                job_id, job_state=state, job_finished=utc_now(), reason=terminal_job_reason(state)
            )
        else:
            self.store.update_job(job_id, job_state=state)

    def cancel_files(self, file_ids: Iterable[int]) -> None:
        """Stop running copies of files the API has just marked CANCELED."""
        for file_id in file_ids:
            self._next_poll.pop(file_id, None)
            task = self._copies.get(file_id)
            if task is not None:
                task.cancel()

    # --- copies ---------------------------------------------------------------------------
    async def _schedule_copies(self) -> None:
        free = self.settings.concurrency - len(self._copies)
        if free <= 0:
            return
        jobs: dict[str, dict[str, Any] | None] = {}
        touched: set[str] = set()
        candidates = self.store.files_ready_to_copy(
            time.time(), exclude=self._copies.keys(), limit=free
        )
        for entry in candidates:
            if free <= 0:
                break
            if entry["job_id"] not in jobs:
                jobs[entry["job_id"]] = self.store.get_job(entry["job_id"])
            job = jobs[entry["job_id"]]
            if job is None or is_job_terminal(job["job_state"]):
                continue
            if not self.store.update_file(
                entry["file_id"],
                only_if_state_in=["SUBMITTED"],
                file_state="ACTIVE",
                start_time=utc_now(),
                attempts=entry["attempts"] + 1,
                reason=None,
            ):
                continue
            touched.add(entry["job_id"])
            entry["attempts"] += 1
            task = asyncio.create_task(self._copy_file(entry, job), name=f"copy-{entry['file_id']}")
            self._copies[entry["file_id"]] = task
            task.add_done_callback(functools.partial(self._copy_done, entry["file_id"]))
            free -= 1
        for job_id in touched:
            self.refresh_job(job_id)

    def _copy_done(self, file_id: int, _task: asyncio.Task[None]) -> None:
        self._copies.pop(file_id, None)
        self._wake.set()

    async def _copy_file(self, entry: dict[str, Any], job: dict[str, Any]) -> None:
        params = job["params"]
        file_id = entry["file_id"]
        started = time.monotonic()
        try:
            size = await self._transfer(entry, params)
        except asyncio.CancelledError:
            # Cancelled by the user (the API set CANCELED) or by shutdown (stays ACTIVE and is
            # redone after restart). A cancelled copy leaves no partial file behind.
            if self.store.file_state(file_id) == "CANCELED":
                await asyncio.shield(self._remove_canceled(entry["dest_surl"]))
            raise
        except TransferFailure as failure:
            self._record_failure(entry, params, failure)
        except XrootdError as error:
            self._record_failure(entry, params, TransferFailure(f"TRANSFER {error}"))
        except Exception as error:  # an emulator bug must fail the file, not hang it
            log.exception("copy of file %s crashed", file_id)
            self._record_failure(entry, params, TransferFailure(f"TRANSFER internal: {error}"))
        else:
            duration = max(time.monotonic() - started, 1e-6)
            archive_timeout = params.get("archive_timeout") or 0
            columns: dict[str, Any] = {
                "filesize": size,
                "tx_duration": round(duration, 3),
                "throughput": round((size or 0) / duration / 1024, 2),  # KiB/s
            }
            if archive_timeout > 0:
                columns.update(file_state="ARCHIVING", archive_start=utc_now())
            else:
                columns.update(file_state="FINISHED", finish_time=utc_now())
            self.store.update_file(file_id, only_if_state_in=["ACTIVE"], **columns)
        if self.store.file_state(file_id) == "CANCELED":
            # Cancelled while the copy was finishing (its task was past the point where a
            # cancel interrupts it): a CANCELED file leaves nothing at the destination.
            await self._remove_canceled(entry["dest_surl"])
        self.refresh_job(entry["job_id"])

    async def _remove_canceled(self, destination: str) -> None:
        """Remove a cancelled copy's destination, and keep removing it for a few seconds: the
        server's killed copy program may still be creating it (each step is best effort; a
        destination that does not exist yet is not an error)."""
        for _ in range(CANCEL_CLEANUP_CHECKS):
            with contextlib.suppress(Exception):
                if await self.tools.exists(destination):
                    await self.tools.remove(destination)
            await asyncio.sleep(CANCEL_CLEANUP_INTERVAL)

    def _record_failure(
        self, entry: dict[str, Any], params: dict[str, Any], failure: TransferFailure
    ) -> None:
        attempts_allowed = max_attempts(params.get("retry"), self.settings.retry_default)
        restarted = bool(entry["extra"].get("restarted"))
        if restarted:
            # The attempt a restart interrupted does not count, and the first attempt after it
            # gets one more try: the storage may hold the killed copy's file open for a moment.
            attempts_allowed += 2
        if failure.retryable and entry["attempts"] < attempts_allowed:
            delay = max(float(params.get("retry_delay") or 0), 2.0 if restarted else 0.0)
            log.info(
                "file %s failed (%s); retry %d/%d",
                entry["file_id"],
                failure.reason,
                entry["attempts"],
                attempts_allowed - 1,
            )
            self.store.update_file(
                entry["file_id"],
                only_if_state_in=["ACTIVE"],
                file_state="SUBMITTED",
                reason=failure.reason,
                not_before=time.time() + delay,
            )
            return
        log.info("file %s FAILED: %s", entry["file_id"], failure.reason)
        self.store.update_file(
            entry["file_id"],
            only_if_state_in=["ACTIVE"],
            file_state="FAILED",
            reason=failure.reason,
            finish_time=utc_now(),
        )

    async def _transfer(self, entry: dict[str, Any], params: dict[str, Any]) -> int | None:
        """One copy attempt; returns the destination size or raises TransferFailure."""
        source, destination = entry["source_surl"], entry["dest_surl"]
        extra = entry["extra"]
        faults = self.settings.faults
        if faults.transfer_failure_rate and random.random() < faults.transfer_failure_rate:
            raise TransferFailure("TRANSFER [5] Injected transfer failure (fault injection)")

        source_info, destination_info = await asyncio.gather(
            self.tools.stat(source), self.tools.stat(destination)
        )
        if source_info is None:
            raise TransferFailure(
                f"SOURCE [2] Failed to stat {source}: No such file or directory", retryable=False
            )
        source_size = int(source_info.size)

        overwrite = bool(params.get("overwrite"))
        # Our own partial copy (restart, retry) is replaced without asking for overwrite.
        ours = bool(extra.get("dest_written"))
        if destination_info is not None and not (overwrite or ours):
            raise TransferFailure(
                f"DESTINATION [17] Destination file exists and overwrite is not enabled: "
                f"{destination}",
                retryable=False,
            )
        if destination_info is not None:
            # Removed, not truncated by the copy's open: the server caches checksums by
            # mtime (1 s), so a file rewritten within a second could keep its old checksum.
            await self.tools.remove(destination)

        mode = params.get("verify_checksum") or "n"
        _, user_value = parse_user_checksum(entry["checksum"])
        source_sum = None
        if mode in {"b", "s"}:
            source_sum = await self.tools.adler32(source)
            if user_value and source_sum != user_value:
                raise TransferFailure(
                    f"SOURCE [5] User defined checksum and source checksum do not match "
                    f"{user_value} != {source_sum}",
                    retryable=False,
                )

        if not ours:
            extra["dest_written"] = True
            self.store.update_file(entry["file_id"], extra=json.dumps(extra))
        timeout = float(params.get("timeout") or self.settings.copy_timeout)
        try:
            if self._use_tpc(source_size):
                await self.tools.third_party_copy(
                    source, destination, time_limit=timeout, size_hint=source_size
                )
            else:
                await self.tools.streamed_copy(source, destination, time_limit=timeout)
        except TimeoutError as error:
            await self.tools.remove(destination)
            raise TransferFailure(f"TRANSFER [110] Copy timed out after {timeout:.0f}s") from error

        if mode in {"b", "t"}:
            destination_sum, size = await asyncio.gather(
                self.tools.adler32(destination), self.tools.size(destination)
            )
            if mode == "t" and user_value:
                expected, against = user_value, "User defined"
            else:
                expected = source_sum or await self.tools.adler32(source)
                against = "Source"
            if destination_sum != expected:
                await self.tools.remove(destination)
                raise TransferFailure(
                    f"DESTINATION [5] {against} and destination checksums do not match "
                    f"{expected} != {destination_sum}"
                )
            return size
        return await self.tools.size(destination)

    def _use_tpc(self, size: int) -> bool:
        mode = self.settings.copy_mode
        if mode == "tpc":
            return True
        if mode == "streamed":
            return False
        return size >= self.settings.tpc_min_size

    # --- staging (restore from tape) -----------------------------------------------------
    async def _poll_staging(self) -> None:
        staging = self.store.files_in_states(["STAGING"])
        if not staging:
            return
        jobs = {e["job_id"]: self.store.get_job(e["job_id"]) for e in staging}
        to_request: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        to_query: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        now = time.monotonic()
        for entry in staging:
            server = XrootdUrl.parse(entry["source_surl"]).server
            if entry["staging_reqid"]:
                if self._due([entry], now):
                    to_query[(server, entry["staging_reqid"])].append(entry)
            else:
                to_request[(entry["job_id"], server)].append(entry)
        for (_job_id, server), entries in to_request.items():
            paths = [XrootdUrl.parse(e["source_surl"]).path for e in entries]
            try:
                request_id = await self.tools.stage(server, paths)
            except XrootdError as error:
                for e in entries:
                    self._finish_staging(e, failed=f"STAGING [5] prepare failed: {error}")
                continue
            for e in entries:
                self.store.update_file(
                    e["file_id"],
                    only_if_state_in=["STAGING"],
                    staging_reqid=request_id,
                    staging_start=utc_now(),
                )
                self._polled(e["file_id"], now)
        await asyncio.gather(
            *(
                self._query_staging(server, request_id, entries, jobs)
                for (server, request_id), entries in to_query.items()
            )
        )

    async def _query_staging(
        self,
        server: str,
        request_id: str,
        entries: list[dict[str, Any]],
        jobs: dict[str, dict[str, Any] | None],
    ) -> None:
        paths = [XrootdUrl.parse(e["source_surl"]).path for e in entries]
        # Unanswered polls still count against bring_online.
        statuses = await self._query_batches(server, request_id, paths)
        now = time.monotonic()
        for entry, path in zip(entries, paths, strict=True):
            self._polled(entry["file_id"], now)
            status = statuses.get(path)
            job = jobs.get(entry["job_id"]) or {"params": {}}
            bring_online = float(job["params"].get("bring_online") or 0)
            if status is not None and not status.path_exists:
                self._finish_staging(
                    entry,
                    failed=(
                        f"SOURCE [2] Failed to stage {entry['source_surl']}: "
                        f"{status.error_text or 'No such file or directory'}"
                    ),
                )
            elif status is not None and status.error_text and not status.online:
                self._finish_staging(entry, failed=f"STAGING [5] {status.error_text}")
            elif status is not None and status.online:
                self._finish_staging(entry, failed=None)
            elif bring_online > 0 and _seconds_since(entry["staging_start"]) > bring_online:
                self._finish_staging(
                    entry,
                    failed=(f"STAGING [62] Staging timeout: not online after {bring_online:.0f}s"),
                )

    def _finish_staging(self, entry: dict[str, Any], *, failed: str | None) -> None:
        self._next_poll.pop(entry["file_id"], None)
        if failed:
            self.store.update_file(
                entry["file_id"],
                only_if_state_in=["STAGING"],
                file_state="FAILED",
                reason=failed,
                finish_time=utc_now(),
                staging_finished=utc_now(),
            )
        else:
            self.store.update_file(
                entry["file_id"],
                only_if_state_in=["STAGING"],
                file_state="SUBMITTED",
                staging_finished=utc_now(),
            )
            self._wake.set()
        self.refresh_job(entry["job_id"])

    # --- archiving (waiting for the tape copy) --------------------------------------------
    async def _poll_archiving(self) -> None:
        archiving = self.store.files_in_states(["ARCHIVING"])
        now = time.monotonic()
        by_server: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self._due(archiving, now):
            by_server[XrootdUrl.parse(entry["dest_surl"]).server].append(entry)
        if not by_server:
            return
        jobs: dict[str, dict[str, Any] | None] = {}

        async def poll(server: str, entries: list[dict[str, Any]]) -> None:
            paths = [XrootdUrl.parse(e["dest_surl"]).path for e in entries]
            statuses = await self._query_batches(server, ARCHIVE_QUERY_ID, paths)
            polled_at = time.monotonic()
            for entry, path in zip(entries, paths, strict=True):
                self._polled(entry["file_id"], polled_at)
                if entry["job_id"] not in jobs:
                    jobs[entry["job_id"]] = self.store.get_job(entry["job_id"])
                job = jobs[entry["job_id"]] or {"params": {}}
                self._check_archived(entry, statuses.get(path), job["params"])

        await asyncio.gather(*(poll(server, entries) for server, entries in by_server.items()))

    def _check_archived(self, entry: dict[str, Any], status: Any, params: dict[str, Any]) -> None:
        archive_timeout = float(params.get("archive_timeout") or 0)
        if status is not None and status.on_tape:
            self._next_poll.pop(entry["file_id"], None)
            self.store.update_file(
                entry["file_id"],
                only_if_state_in=["ARCHIVING"],
                file_state="FINISHED",
                finish_time=utc_now(),
                archive_finish_time=utc_now(),
            )
        elif archive_timeout > 0 and _seconds_since(entry["archive_start"]) > archive_timeout:
            self._next_poll.pop(entry["file_id"], None)
            self.store.update_file(
                entry["file_id"],
                only_if_state_in=["ARCHIVING"],
                file_state="FAILED",
                finish_time=utc_now(),
                reason=f"Archiving timeout: not on tape after {archive_timeout:.0f}s",
            )
        else:
            return
        self.refresh_job(entry["job_id"])
