"""What the command shows a person: rich tables, and the live display of a request's jobs.

Each function takes the gateway's JSON as it came (see docs/openapi.json) and returns a
renderable; printing is the caller's business.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

Status = dict[str, Any]

_STATE_STYLES = {
    "FINISHED": "bold green",
    "FINISHEDDIRTY": "bold yellow",
    "FAILED": "bold red",
    "CANCELED": "bold magenta",
}


def state_text(state: str | None) -> Text:
    return Text(state or "-", style=_STATE_STYLES.get(state or "", "bold cyan"))


def size(count: int) -> str:
    """Bytes for a person: 1.5 GB, 250.0 MB, 12 B."""
    amount = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{count} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def failure_line(failure: dict[str, Any] | None) -> str | None:
    if not failure:
        return None
    return f"{failure.get('class', 'system')} error: {failure.get('reason', '')}"


def headline(status: Status) -> Text:
    """One line: the request, its kind and state, and what it waits on now."""
    line = Text.assemble(
        (f"{status['kind']} ", "bold"),
        (status["request_id"], "dim"),
        " ",
        state_text(status["state"]),
    )
    if status.get("waiting_on"):
        line.append(f"  waiting on {status['waiting_on']}", style="italic")
    if failure := failure_line(status.get("failure")):
        line.append(f"  {failure}", style="red")
    return line


class LiveRequest:
    """One progress bar per job (files done of all, bytes, state) under the request's
    headline; ``update`` with each status fetched, show it with ``rich.live.Live``."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[bytes]}"),
            TextColumn("{task.fields[state]}"),
            auto_refresh=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._headline = Text("waiting for the gateway...")

    def update(self, status: Status) -> None:
        self._headline = headline(status)
        for job in status["jobs"]:
            fields = {
                "completed": job["files_done"] + job["files_failed"],
                "total": job["files_total"] or None,
                "bytes": f"{size(job['bytes_done'])} / {size(job['bytes_total'])}",
                "state": job["state"],
            }
            task = self._tasks.get(job["job_id"])
            if task is None:
                self._tasks[job["job_id"]] = self.progress.add_task(
                    f"job {job['job_id'][:8]}", **fields
                )
            else:
                self.progress.update(task, **fields)

    def __rich__(self) -> Group:
        return Group(self._headline, self.progress)


def summary(status: Status) -> Group:
    """A request once ended (or as it stands): its headline and a table of its jobs."""
    table = Table(title="jobs", title_justify="left")
    table.add_column("job", overflow="fold")  # whole: it is what `/job/{id}` takes
    table.add_column("state")
    table.add_column("files done", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("bytes", justify="right")
    for job in status["jobs"]:
        table.add_row(
            job["job_id"],
            state_text(job["state"]),
            f"{job['files_done']}/{job['files_total']}",
            str(job["files_failed"]),
            f"{size(job['bytes_done'])} / {size(job['bytes_total'])}",
        )
    return Group(headline(status), table)


def request_table(items: list[Status]) -> Table:
    table = Table()
    table.add_column("request", overflow="fold")
    for column in ("kind", "state", "created", "files", "waiting on / failure"):
        table.add_column(column)
    for item in items:
        done = sum(j["files_done"] for j in item["jobs"])
        total = sum(j["files_total"] for j in item["jobs"])
        table.add_row(
            item["request_id"],
            item["kind"],
            state_text(item["state"]),
            item["created"][:19].replace("T", " "),
            f"{done}/{total}",
            item.get("waiting_on") or failure_line(item.get("failure")) or "",
        )
    return table


def dataset_status(status: Status) -> Group:
    heading = Text.assemble(
        ("dataset ", "bold"),
        f"{status['dataset_id']} {status['name']} ",
        state_text(status["state"]),
        f"  {status['files_ended']}/{status['files_total']} files ended"
        f" ({status['percentage_complete']:.0f} %), {status['files_failed']} failed",
    )
    parts: list[Any] = [heading]
    if failure := failure_line(status.get("failure")):
        parts.append(Text(failure, style="red"))
    if status.get("waiting_on"):
        parts.append(Text(f"waiting on {status['waiting_on']}", style="italic"))
    if status.get("file_states"):
        table = Table()
        table.add_column("file")
        table.add_column("state")
        for path, state in sorted(status["file_states"].items()):
            table.add_row(path, state_text(state))
        parts.append(table)
    return Group(*parts)


def restore_preview(rows: list[dict[str, Any]]) -> Table:
    """What a restore would take: each selected investigation, dataset or datafile."""
    table = Table(title="restore (dry run: nothing sent)", title_justify="left")
    for column in ("kind", "id", "name", "archival state", "files", "restorable"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["kind"],
            str(row["id"]),
            row.get("name") or "",
            state_text(row.get("state")),
            str(row.get("files", "")),
            _restorable(row["restorable"]),
        )
    return table


def _restorable(restorable: bool | None) -> Text:
    if restorable is None:
        return Text("checked when sent", "dim")
    return Text("yes", "green") if restorable else Text("no", "red")
