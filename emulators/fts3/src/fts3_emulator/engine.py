"""The transfer engine: stages, copies (XRootD third-party copy), verifies and archives files.

All state lives in SQLite, so a restarted emulator picks every unfinished file up again: files
that were ACTIVE when it stopped go back to SUBMITTED, STAGING and ARCHIVING files are polled on.
One scheduler loop runs every ``poll_interval``: it starts copies (at most ``concurrency`` at a
time), polls staging requests and archiving files in batches per storage server.
"""

from __future__ import annotations

import asyncio
import contextlib
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

log = logging.getLogger("fts3_emulator.engine")

ARCHIVE_QUERY_ID = "fts3-emulator-archive-monitor"  # query prepare needs an id; any will do
QUERY_BATCH = 200


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
    def __init__(self, store: Store, settings: EmulatorSettings,
                 tools: XrootdTools | None = None) -> None:
        self.store = store
        self.settings = settings
        self.tools = tools or XrootdTools(settings.xrdfs, settings.xrdcp)
        self._copies: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.recover()
        self._loop_task = asyncio.create_task(self._run(), name="fts3-engine")

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._copies.values())
        if self._loop_task:
            self._loop_task.cancel()
            tasks.append(self._loop_task)
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
            self.store.update_file(entry["file_id"], file_state="SUBMITTED", not_before=0,
                                   extra=json.dumps(extra))
            log.info("file %s of job %s resumes after restart", entry["file_id"], entry["job_id"])

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._schedule_copies()
                await self._poll_staging()
                await self._poll_archiving()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("engine pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()

    # --- job bookkeeping ------------------------------------------------------------------
    def refresh_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or is_job_terminal(job["job_state"]):
            return
        state = derive_job_state(f["file_state"] for f in self.store.files_of(job_id))
        if state == job["job_state"]:
            return
        if is_job_terminal(state):
            self.store.update_job(job_id, job_state=state, job_finished=utc_now(),
                                  reason=terminal_job_reason(state))
        else:
            self.store.update_job(job_id, job_state=state)

    def cancel_files(self, file_ids: Iterable[int]) -> None:
        """Stop running copies of files the API has just marked CANCELED."""
        for file_id in file_ids:
            task = self._copies.get(file_id)
            if task is not None:
                task.cancel()

    # --- copies ---------------------------------------------------------------------------
    async def _schedule_copies(self) -> None:
        free = self.settings.concurrency - len(self._copies)
        if free <= 0:
            return
        now = time.time()
        for entry in self.store.files_in_states(["SUBMITTED"]):
            if free <= 0:
                break
            if entry["file_id"] in self._copies or entry["not_before"] > now:
                continue
            job = self.store.get_job(entry["job_id"])
            if job is None or is_job_terminal(job["job_state"]):
                continue
            if not self.store.update_file(entry["file_id"], only_if_state_in=["SUBMITTED"],
                                          file_state="ACTIVE", start_time=utc_now(),
                                          attempts=entry["attempts"] + 1, reason=None):
                continue
            self.refresh_job(entry["job_id"])
            entry["attempts"] += 1
            task = asyncio.create_task(self._copy_file(entry, job), name=f"copy-{entry['file_id']}")
            self._copies[entry["file_id"]] = task
            task.add_done_callback(lambda _t, fid=entry["file_id"]: self._copy_done(fid))
            free -= 1

    def _copy_done(self, file_id: int) -> None:
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
            if self.store.get_file(file_id)["file_state"] == "CANCELED":
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.tools.remove(entry["dest_surl"]))
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
        self.refresh_job(entry["job_id"])

    def _record_failure(self, entry: dict[str, Any], params: dict[str, Any],
                        failure: TransferFailure) -> None:
        attempts_allowed = max_attempts(params.get("retry"), self.settings.retry_default)
        restarted = bool(entry["extra"].get("restarted"))
        if restarted:
            # The attempt a restart interrupted does not count, and the first attempt after it
            # gets one more try: the storage may hold the killed copy's file open for a moment.
            attempts_allowed += 2
        if failure.retryable and entry["attempts"] < attempts_allowed:
            delay = max(float(params.get("retry_delay") or 0), 2.0 if restarted else 0.0)
            log.info("file %s failed (%s); retry %d/%d", entry["file_id"], failure.reason,
                     entry["attempts"], attempts_allowed - 1)
            self.store.update_file(entry["file_id"], only_if_state_in=["ACTIVE"],
                                   file_state="SUBMITTED", reason=failure.reason,
                                   not_before=time.time() + delay)
            return
        log.info("file %s FAILED: %s", entry["file_id"], failure.reason)
        self.store.update_file(entry["file_id"], only_if_state_in=["ACTIVE"],
                               file_state="FAILED", reason=failure.reason,
                               finish_time=utc_now())

    async def _transfer(self, entry: dict[str, Any], params: dict[str, Any]) -> int | None:
        """One copy attempt; returns the destination size or raises TransferFailure."""
        source, destination = entry["source_surl"], entry["dest_surl"]
        extra = entry["extra"]
        faults = self.settings.faults
        if faults.transfer_failure_rate and random.random() < faults.transfer_failure_rate:
            raise TransferFailure("TRANSFER [5] Injected transfer failure (fault injection)")

        source_exists, destination_exists = await asyncio.gather(
            self.tools.exists(source), self.tools.exists(destination))
        if not source_exists:
            raise TransferFailure(
                f"SOURCE [2] Failed to stat {source}: No such file or directory", retryable=False)

        overwrite = bool(params.get("overwrite"))
        # Our own partial copy (restart, retry) is replaced without asking for overwrite.
        ours = bool(extra.get("dest_written"))
        if destination_exists:
            if not (overwrite or ours):
                raise TransferFailure(
                    f"DESTINATION [17] Destination file exists and overwrite is not enabled: "
                    f"{destination}", retryable=False)
            await self.tools.remove(destination)

        mode = params.get("verify_checksum") or "n"
        _, user_value = parse_user_checksum(entry["checksum"])
        source_sum = None
        if mode in {"b", "s"}:
            source_sum, _ = await asyncio.gather(self.tools.adler32(source),
                                                 self.tools.make_parent(destination))
            if user_value and source_sum != user_value:
                raise TransferFailure(
                    f"SOURCE [5] User defined checksum and source checksum do not match "
                    f"{user_value} != {source_sum}", retryable=False)
        else:
            await self.tools.make_parent(destination)

        if not ours:
            extra["dest_written"] = True
            self.store.update_file(entry["file_id"], extra=json.dumps(extra))
        timeout = float(params.get("timeout") or self.settings.copy_timeout)
        try:
            await self.tools.third_party_copy(source, destination, time_limit=timeout)
        except TimeoutError as error:
            await self.tools.remove(destination)
            raise TransferFailure(f"TRANSFER [110] Copy timed out after {timeout:.0f}s") from error

        if mode in {"b", "t"}:
            destination_sum, size = await asyncio.gather(self.tools.adler32(destination),
                                                         self.tools.size(destination))
            if mode == "t" and user_value:
                expected, against = user_value, "User defined"
            else:
                expected = source_sum or await self.tools.adler32(source)
                against = "Source"
            if destination_sum != expected:
                await self.tools.remove(destination)
                raise TransferFailure(
                    f"DESTINATION [5] {against} and destination checksums do not match "
                    f"{expected} != {destination_sum}")
            return size
        return await self.tools.size(destination)

    # --- staging (restore from tape) -----------------------------------------------------
    async def _poll_staging(self) -> None:
        staging = self.store.files_in_states(["STAGING"])
        if not staging:
            return
        jobs = {e["job_id"]: self.store.get_job(e["job_id"]) for e in staging}
        to_request: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        to_query: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for entry in staging:
            server = XrootdUrl.parse(entry["source_surl"]).server
            if entry["staging_reqid"]:
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
                self.store.update_file(e["file_id"], only_if_state_in=["STAGING"],
                                       staging_reqid=request_id, staging_start=utc_now())
        for (server, request_id), entries in to_query.items():
            for batch_start in range(0, len(entries), QUERY_BATCH):
                batch = entries[batch_start:batch_start + QUERY_BATCH]
                await self._query_staging(server, request_id, batch, jobs)

    async def _query_staging(self, server: str, request_id: str, entries: list[dict[str, Any]],
                             jobs: dict[str, dict[str, Any] | None]) -> None:
        paths = [XrootdUrl.parse(e["source_surl"]).path for e in entries]
        try:
            statuses = await self.tools.query_prepare(server, request_id, paths)
        except (XrootdError, ValueError) as error:
            # Unanswered polls still count against bring_online.
            log.warning("query prepare on %s failed: %s", server, error)
            statuses = {}
        for entry, path in zip(entries, paths, strict=True):
            status = statuses.get(path)
            job = jobs.get(entry["job_id"]) or {"params": {}}
            bring_online = float(job["params"].get("bring_online") or 0)
            if status is not None and not status.path_exists:
                self._finish_staging(entry, failed=(
                    f"SOURCE [2] Failed to stage {entry['source_surl']}: "
                    f"{status.error_text or 'No such file or directory'}"))
            elif status is not None and status.error_text and not status.online:
                self._finish_staging(entry, failed=f"STAGING [5] {status.error_text}")
            elif status is not None and status.online:
                self._finish_staging(entry, failed=None)
            elif bring_online > 0 and _seconds_since(entry["staging_start"]) > bring_online:
                self._finish_staging(entry, failed=(
                    f"STAGING [62] Staging timeout: not online after {bring_online:.0f}s"))

    def _finish_staging(self, entry: dict[str, Any], *, failed: str | None) -> None:
        if failed:
            self.store.update_file(entry["file_id"], only_if_state_in=["STAGING"],
                                   file_state="FAILED", reason=failed, finish_time=utc_now(),
                                   staging_finished=utc_now())
        else:
            self.store.update_file(entry["file_id"], only_if_state_in=["STAGING"],
                                   file_state="SUBMITTED", staging_finished=utc_now())
            self._wake.set()
        self.refresh_job(entry["job_id"])

    # --- archiving (waiting for the tape copy) --------------------------------------------
    async def _poll_archiving(self) -> None:
        archiving = self.store.files_in_states(["ARCHIVING"])
        by_server: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in archiving:
            by_server[XrootdUrl.parse(entry["dest_surl"]).server].append(entry)
        jobs: dict[str, dict[str, Any] | None] = {}
        for server, entries in by_server.items():
            for batch_start in range(0, len(entries), QUERY_BATCH):
                batch = entries[batch_start:batch_start + QUERY_BATCH]
                paths = [XrootdUrl.parse(e["dest_surl"]).path for e in batch]
                try:
                    statuses = await self.tools.query_prepare(server, ARCHIVE_QUERY_ID, paths)
                except (XrootdError, ValueError) as error:
                    log.warning("archive query on %s failed: %s", server, error)
                    statuses = {}
                for entry, path in zip(batch, paths, strict=True):
                    if entry["job_id"] not in jobs:
                        jobs[entry["job_id"]] = self.store.get_job(entry["job_id"])
                    job = jobs[entry["job_id"]] or {"params": {}}
                    self._check_archived(entry, statuses.get(path), job["params"])

    def _check_archived(self, entry: dict[str, Any], status: Any, params: dict[str, Any]) -> None:
        archive_timeout = float(params.get("archive_timeout") or 0)
        if status is not None and status.on_tape:
            self.store.update_file(entry["file_id"], only_if_state_in=["ARCHIVING"],
                                   file_state="FINISHED", finish_time=utc_now(),
                                   archive_finish_time=utc_now())
        elif archive_timeout > 0 and _seconds_since(entry["archive_start"]) > archive_timeout:
            self.store.update_file(
                entry["file_id"], only_if_state_in=["ARCHIVING"], file_state="FAILED",
                finish_time=utc_now(),
                reason=f"Archiving timeout: not on tape after {archive_timeout:.0f}s")
        else:
            return
        self.refresh_job(entry["job_id"])


