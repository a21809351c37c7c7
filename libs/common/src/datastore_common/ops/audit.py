"""The audit run: read ICAT's archived datafiles and the tape namespace through their ports,
compare them (``domain.audit``), re-verify a random sample's adler32 on tape, record fixity
failures in ICAT, export the figures as metrics and write the report.

``datastore-ops audit`` runs it once; the status-poller runs ``audit_loop`` when
``audit.interval_seconds`` is set.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from datastore_common.domain.audit import (
    AuditReport,
    archived_file,
    choose_sample,
    compare,
    fixity_of,
    fixity_records,
    summary,
)
from datastore_common.domain.paths import storage_url
from datastore_common.errors import ConfigurationError
from datastore_common.logging import get_logger
from datastore_common.messages.metadata import check_safe_name
from datastore_common.metrics import (
    AUDIT_FILES,
    AUDIT_FILES_HELP,
    AUDIT_LAST_RUN,
    AUDIT_LAST_RUN_HELP,
)
from datastore_common.ports import Catalogue, Storage
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)


def audit_folder(under: str) -> str:
    """``under`` as a relative folder of safe components ("" for the whole tape root);
    ConfigurationError saying why otherwise."""
    folder = under.strip("/")
    if not folder:
        return ""
    for part in folder.split("/"):
        try:
            check_safe_name(part, "audit folder component")
        except ValueError as exc:
            raise ConfigurationError(f"audit folder {under!r}: {exc}") from None
    return folder


async def run_audit(
    *,
    catalogue: Catalogue,
    tape: Storage,
    tape_archive: str,
    tape_root_dir: str,
    under: str = "",
    sample_size: int = 100,
    page_size: int = 1000,
    record: bool = True,
    rng: random.Random | None = None,
) -> AuditReport:
    """One audit of ``under`` (a folder below the tape root; "" = all). With ``record``
    (the default) fixity failures are written to ICAT and repaired files cleared."""
    folder = audit_folder(under)
    started = datetime.now(UTC)
    archived = []
    after = 0
    while True:
        page = await catalogue.archived_datafiles(under=folder, after=after, limit=page_size)
        archived += [archived_file(datafile) for datafile in page]
        if len(page) < page_size:
            break
        after = max(datafile.datafile_id for datafile in page)
    root = storage_url(tape_archive, folder, prefix=tape_root_dir)
    listing = await tape.list_tree(root)
    on_tape = {(f"{folder}/{path}" if folder else path): size for path, size in listing.items()}
    comparison = compare(archived, on_tape)

    sample = choose_sample(comparison.present, sample_size, rng or random.Random())
    urls = {
        datafile.datafile_id: storage_url(
            tape_archive, datafile.location or "", prefix=tape_root_dir
        )
        for datafile in sample
    }
    described = await tape.describe_many(list(urls.values()))
    checks = []
    for datafile in sample:
        stored = described.get(urls[datafile.datafile_id])
        checks.append(fixity_of(datafile, None if stored is None else stored.checksum))
    records = fixity_records(checks)
    if record and records:
        await catalogue.set_archival("Datafile", records)
    report = AuditReport(
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        tape_root=storage_url(tape_archive, "", prefix=tape_root_dir),
        under=folder,
        comparison=comparison,
        fixity=tuple(checks),
    )
    export_metrics(report)
    return report


def export_metrics(report: AuditReport) -> None:
    for kind, value in report.counts.items():
        AUDIT_FILES.labels(kind=kind).set(value)
    AUDIT_LAST_RUN.labels(outcome="clean" if report.clean else "disagreements").set(time.time())


def write_metrics_file(report: AuditReport, path: Path) -> None:
    """The figures of ``report`` in Prometheus' text format, for node_exporter's textfile
    collector (a one-shot ``datastore-ops audit`` from cron has no server to scrape)."""
    registry = CollectorRegistry()
    files = Gauge("datastore_audit_files", AUDIT_FILES_HELP, ["kind"], registry=registry)
    for kind, value in report.counts.items():
        files.labels(kind=kind).set(value)
    last = Gauge(
        "datastore_audit_last_run_timestamp_seconds",
        AUDIT_LAST_RUN_HELP,
        ["outcome"],
        registry=registry,
    )
    last.labels(outcome="clean" if report.clean else "disagreements").set(time.time())
    write_to_textfile(str(path), registry)


def write_report(report: AuditReport, directory: Path) -> tuple[Path, Path]:
    """``audit-<finished>.json`` and ``.txt`` in ``directory`` (made when missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(report.finished).strftime("%Y%m%dT%H%M%SZ")
    data = directory / f"audit-{stamp}.json"
    text = directory / f"audit-{stamp}.txt"
    data.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    text.write_text(summary(report) + "\n")
    return data, text


def audit_from_settings(
    settings: DatastoreSettings, *, catalogue: Catalogue, tape: Storage
) -> Callable[[], Awaitable[AuditReport]]:
    """One audit as ``settings.audit`` says, on these ports; its report is written to
    ``audit.report_dir`` when set."""

    async def once() -> AuditReport:
        report = await run_audit(
            catalogue=catalogue,
            tape=tape,
            tape_archive=settings.tape_archive,
            tape_root_dir=settings.tape_root_dir,
            under=settings.audit.under,
            sample_size=settings.audit.sample_size,
            page_size=settings.audit.page_size,
        )
        written = None
        if settings.audit.report_dir is not None:
            written, _ = write_report(report, settings.audit.report_dir)
        log.info("audit_done", clean=report.clean, report=str(written or "-"), **report.counts)
        if not report.clean:
            log.warning("audit_disagreements", summary=summary(report))
        return report

    return once


async def audit_loop(
    audit: Callable[[], Awaitable[object]],
    interval_seconds: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Audit every ``interval_seconds`` (first after one interval, so a restart loop does
    not audit each time) until cancelled. A failed run is logged and counted
    (``datastore_audit_last_run_timestamp_seconds{outcome="failed"}``); the next one comes
    all the same: ICAT or the tape being away for a while is no reason to stop."""
    while True:
        await sleep(interval_seconds)
        try:
            await audit()
        except Exception as exc:
            AUDIT_LAST_RUN.labels(outcome="failed").set(time.time())
            log.warning("audit_failed", error_type=type(exc).__name__, error=str(exc))
