"""SQLite persistence for jobs, files and delegations (survives a restart of the emulator)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fts3_emulator.states import TIMESTAMP_FORMAT

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_state TEXT NOT NULL,
    user_dn TEXT NOT NULL,
    vo_name TEXT NOT NULL,
    cred_id TEXT NOT NULL,
    source_se TEXT,
    dest_se TEXT,
    submit_time TEXT NOT NULL,
    job_finished TEXT,
    reason TEXT,
    cancel_job INTEGER NOT NULL DEFAULT 0,
    params TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(job_state);
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    file_index INTEGER NOT NULL,
    file_state TEXT NOT NULL,
    source_surl TEXT NOT NULL,
    dest_surl TEXT NOT NULL,
    checksum TEXT,
    user_filesize INTEGER,
    filesize INTEGER,
    reason TEXT,
    start_time TEXT,
    finish_time TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    staging_reqid TEXT,
    staging_start TEXT,
    staging_finished TEXT,
    archive_start TEXT,
    archive_finish_time TEXT,
    tx_duration REAL,
    throughput REAL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_job ON files(job_id);
CREATE INDEX IF NOT EXISTS files_by_state ON files(file_state);
CREATE TABLE IF NOT EXISTS delegations (
    dlg_id TEXT PRIMARY KEY,
    user_dn TEXT NOT NULL,
    request_key TEXT,
    proxy_pem TEXT,
    termination_time TEXT
);
"""


def _ts(moment: datetime | None) -> str | None:
    return moment.strftime(TIMESTAMP_FORMAT) if moment else None


@dataclass
class NewFile:
    source_surl: str
    dest_surl: str
    file_state: str
    checksum: str | None
    user_filesize: int | None
    extra: dict[str, Any] = field(default_factory=dict)


class DuplicateJobError(Exception):
    """The job id (deterministic sid) already exists."""


class Store:
    """A thin synchronous repository; every call is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- jobs -----------------------------------------------------------------------------
    def insert_job(self, job: dict[str, Any], files: Sequence[NewFile]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO jobs (job_id, job_state, user_dn, vo_name, cred_id, source_se,"
                " dest_se, submit_time, params) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    job["job_id"],
                    job["job_state"],
                    job["user_dn"],
                    job["vo_name"],
                    job["cred_id"],
                    job["source_se"],
                    job["dest_se"],
                    job["submit_time"],
                    json.dumps(job["params"]),
                ),
            )
            self._db.executemany(
                "INSERT INTO files (job_id, file_index, file_state, source_surl, dest_surl,"
                " checksum, user_filesize, extra) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        job["job_id"],
                        index,
                        f.file_state,
                        f.source_surl,
                        f.dest_surl,
                        f.checksum,
                        f.user_filesize,
                        json.dumps(f.extra),
                    )
                    for index, f in enumerate(files)
                ],
            )
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError as error:
            self._db.execute("ROLLBACK")
            raise DuplicateJobError(job["job_id"]) from error
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _job_row(row) if row else None

    def list_jobs(
        self,
        *,
        states: Iterable[str] | None = None,
        unfinished_only: bool = True,
        filters: dict[str, str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        clauses, values = [], []
        if states:
            states = list(states)
            clauses.append(f"job_state IN ({','.join('?' * len(states))})")
            values.extend(states)
        if unfinished_only:
            clauses.append("job_finished IS NULL")
        for column, value in (filters or {}).items():
            clauses.append(f"{column} = ?")
            values.append(value)
        sql = "SELECT * FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY submit_time DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_job_row(row) for row in self._db.execute(sql, values)]

    def update_job(self, job_id: str, **columns: Any) -> None:
        if not columns:
            return
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self._db.execute(
            f"UPDATE jobs SET {assignments} WHERE job_id = ?",
            (*(_ts(v) if isinstance(v, datetime) else v for v in columns.values()), job_id),
        )

    # --- files ----------------------------------------------------------------------------
    def files_of(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM files WHERE job_id = ? ORDER BY file_id", (job_id,))
        return [_file_row(row) for row in rows]

    def get_file(self, file_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM files WHERE file_id = ?", (file_id,)).fetchone()
        return _file_row(row) if row else None

    def file_state(self, file_id: int) -> str:
        """The state of a file that is known to exist (files are never deleted)."""
        file = self.get_file(file_id)
        if file is None:
            raise LookupError(f"file {file_id} is not in the store")
        return str(file["file_state"])

    def files_in_states(self, states: Iterable[str]) -> list[dict[str, Any]]:
        states = list(states)
        rows = self._db.execute(
            f"SELECT * FROM files WHERE file_state IN ({','.join('?' * len(states))})"
            " ORDER BY file_id",
            states,
        )
        return [_file_row(row) for row in rows]

    def file_states_of(self, job_id: str) -> list[str]:
        """Every file state of a job (one entry per file), without loading the rows."""
        rows = self._db.execute(
            "SELECT file_state, COUNT(*) FROM files WHERE job_id = ? GROUP BY file_state", (job_id,)
        )
        return [state for state, count in rows for _ in range(count)]

    def files_ready_to_copy(
        self, now: float, *, exclude: Iterable[int] = (), limit: int = 100
    ) -> list[dict[str, Any]]:
        """SUBMITTED files whose retry delay is over, oldest first, at most ``limit`` (plus
        the excluded ones, which are skipped)."""
        excluded = set(exclude)
        rows = self._db.execute(
            "SELECT * FROM files WHERE file_state = 'SUBMITTED' AND not_before <= ?"
            " ORDER BY file_id LIMIT ?",
            (now, limit + len(excluded)),
        )
        entries = [_file_row(row) for row in rows]
        return [e for e in entries if e["file_id"] not in excluded][:limit]

    def update_file(
        self, file_id: int, *, only_if_state_in: Iterable[str] | None = None, **columns: Any
    ) -> bool:
        """Update one file; with ``only_if_state_in`` the update is skipped (False) when the file
        has meanwhile moved (e.g. cancelled while a copy ran)."""
        assignments = ", ".join(f"{name} = ?" for name in columns)
        values: list[Any] = [_ts(v) if isinstance(v, datetime) else v for v in columns.values()]
        sql = f"UPDATE files SET {assignments} WHERE file_id = ?"
        values.append(file_id)
        if only_if_state_in is not None:
            allowed = list(only_if_state_in)
            sql += f" AND file_state IN ({','.join('?' * len(allowed))})"
            values.extend(allowed)
        return self._db.execute(sql, values).rowcount == 1

    # --- delegations ----------------------------------------------------------------------
    def get_delegation(self, dlg_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM delegations WHERE dlg_id = ?", (dlg_id,)).fetchone()
        return dict(row) if row else None

    def save_request_key(self, dlg_id: str, user_dn: str, key_pem: str) -> None:
        self._db.execute(
            "INSERT INTO delegations (dlg_id, user_dn, request_key) VALUES (?,?,?)"
            " ON CONFLICT(dlg_id) DO UPDATE SET request_key = excluded.request_key",
            (dlg_id, user_dn, key_pem),
        )

    def save_credential(self, dlg_id: str, proxy_pem: str, termination: datetime) -> None:
        self._db.execute(
            "UPDATE delegations SET proxy_pem = ?, termination_time = ? WHERE dlg_id = ?",
            (proxy_pem, _ts(termination), dlg_id),
        )

    def delete_delegation(self, dlg_id: str) -> bool:
        return self._db.execute("DELETE FROM delegations WHERE dlg_id = ?", (dlg_id,)).rowcount == 1


def _job_row(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    job["params"] = json.loads(job["params"])
    return job


def _file_row(row: sqlite3.Row) -> dict[str, Any]:
    entry = dict(row)
    entry["extra"] = json.loads(entry["extra"])
    return entry
