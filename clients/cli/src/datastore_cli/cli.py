"""The ``datastore`` command: archive and restore facility data through the gateway.

Commands are thin: they call the gateway (``gateway.py``), follow a request when asked
(``follow.py``) and show what came back (``render.py``), or print it as JSON with ``--json``.
A refusal prints the gateway's reason on one line on stderr and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import functools
import getpass
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console
from rich.live import Live

from datastore_cli import session as saved_session
from datastore_cli.follow import EXIT_NOT_FINISHED, exit_code, follow
from datastore_cli.gateway import GatewayClient, GatewayError, SessionExpiredError
from datastore_cli.render import (
    LiveRequest,
    dataset_status,
    request_table,
    restore_preview,
    summary,
)

HELP = "\n\n".join(
    [
        "Archive facility data to tape and restore it, through the Datastore gateway.",
        "Start with `datastore login`; then, for the seed walk-through:",
        "  datastore archive seed-body.json --wait\n"
        "  datastore restore --investigation ABC123-1 --dry-run\n"
        "  datastore restore --investigation ABC123-1 --wait",
        "`--wait` and `--watch` show each job's progress until the request ends, and exit 0 "
        "only when it ended FINISHED (1 otherwise), so scripts can rely on it. `--json` prints "
        "the gateway's answer instead. DATASTORE_URL and DATASTORE_SESSION override what "
        "`login` saved.",
    ]
)

#: Seconds between two looks at a request being followed.
POLL_SECONDS = 2.0
#: The gateway's answer time limit; a restore selection may take up to its ICAT deadline (60 s).
HTTP_TIMEOUT_SECONDS = 90.0


def _connect(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS)


@dataclass
class Deps:
    """What the commands reach outside themselves; tests pass their own (``obj=``)."""

    connect: Callable[[str], httpx.Client] = _connect
    sleep: Callable[[float], None] = time.sleep
    config_dir: Path = field(default_factory=saved_session.config_dir)
    interval: float = POLL_SECONDS


app = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Datasets as ICAT records their archival.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the gateway's JSON answer instead of tables.")
]

P = ParamSpec("P")
R = TypeVar("R")


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Refusals become one line on stderr (the gateway's reason) and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SessionExpiredError as exc:
            _fail(f"{exc.reason} (log in again: datastore login)")
        except GatewayError as exc:
            prefix = f"{exc.status}: " if exc.status else ""
            _fail(f"{prefix}{exc.reason}")

    return run


def _fail(reason: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(
        f"[bold red]error:[/] {' '.join(reason.split())}", soft_wrap=True, markup=True
    )
    raise typer.Exit(EXIT_NOT_FINISHED)


def _deps(ctx: typer.Context) -> Deps:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Deps()
    deps: Deps = root.obj
    return deps


def _gateway(ctx: typer.Context, *, logged_in: bool = True) -> GatewayClient:
    deps = _deps(ctx)
    saved = saved_session.load(deps.config_dir)
    if logged_in and not saved.session:
        _fail(f"not logged in to {saved.url}: run datastore login (or set DATASTORE_SESSION)")
    return GatewayClient(deps.connect(saved.url), saved.session)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _follow(ctx: typer.Context, gateway: GatewayClient, request_id: str, as_json: bool) -> int:
    """Follow a request to its end (a live display, or nothing until the end with --json),
    print its summary (or JSON) and give the exit code its state calls for."""
    deps = _deps(ctx)
    console = Console()
    errors = Console(stderr=True)
    display = LiveRequest()

    def fetch() -> dict[str, Any]:
        return gateway.request(request_id)

    def trouble(exc: GatewayError) -> None:
        errors.print(f"gateway unavailable, asking again: {exc.reason}", markup=False)

    if as_json:
        status = follow(
            fetch,
            on_update=lambda _: None,
            on_trouble=trouble,
            sleep=deps.sleep,
            interval=deps.interval,
        )
        _print_json(status)
        return exit_code(status)
    with Live(display, console=console, transient=True, auto_refresh=False) as live:

        def show(status: dict[str, Any]) -> None:
            display.update(status)
            live.refresh()

        status = follow(
            fetch, on_update=show, on_trouble=trouble, sleep=deps.sleep, interval=deps.interval
        )
    console.print(summary(status))
    return exit_code(status)


@app.command()
@reported
def login(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="The gateway, e.g. http://127.0.0.1:8000.")
    ] = None,
    auth: Annotated[str, typer.Option(help="The ICAT authenticator.")] = "simple",
    username: Annotated[
        str | None, typer.Option(help="Your ICAT user name (asked when not given).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Log in with your ICAT credentials; the session is kept for the next commands."""
    deps = _deps(ctx)
    gateway_url = (url or saved_session.load(deps.config_dir).url).rstrip("/")
    name = username or typer.prompt("ICAT user name", default=getpass.getuser())
    password = typer.prompt("Password", hide_input=True)
    session_id = GatewayClient(deps.connect(gateway_url)).login(name, password, auth)
    path = saved_session.save(deps.config_dir, saved_session.Saved(gateway_url, session_id))
    if as_json:
        _print_json({"url": gateway_url, "user": f"{auth}/{name}", "session_file": str(path)})
    else:
        typer.echo(f"Logged in to {gateway_url} as {auth}/{name}; session kept in {path}")


@app.command()
@reported
def archive(
    ctx: typer.Context,
    body: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The archive request (JSON).")
    ],
    wait: Annotated[bool, typer.Option(help="Follow it to its end with live progress.")] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Sent again with the same key, the same request is answered."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Archive what a request body names, from the instrument data cache to tape."""
    try:
        request_body = json.loads(body.read_text())
    except ValueError as exc:
        _fail(f"{body} is not JSON: {exc}")
    gateway = _gateway(ctx)
    accepted = gateway.archive(request_body, idempotency_key)
    _accepted(ctx, gateway, accepted, wait=wait, as_json=as_json)


def _accepted(
    ctx: typer.Context,
    gateway: GatewayClient,
    accepted: dict[str, Any],
    *,
    wait: bool,
    as_json: bool,
) -> None:
    if wait:
        if not as_json:
            typer.echo(f"accepted: request {accepted['request_id']}")
        raise typer.Exit(_follow(ctx, gateway, accepted["request_id"], as_json))
    if as_json:
        _print_json(accepted)
    else:
        typer.echo(f"accepted: request {accepted['request_id']}")
        typer.echo(f"follow it with: datastore status {accepted['request_id']} --watch")


@app.command()
@reported
def restore(
    ctx: typer.Context,
    investigation: Annotated[
        list[str] | None,
        typer.Option(help="An investigation: its ICAT id, or NAME-VISIT (ABC123-1). Repeatable."),
    ] = None,
    dataset: Annotated[list[int] | None, typer.Option(help="A dataset id. Repeatable.")] = None,
    datafile: Annotated[list[int] | None, typer.Option(help="A datafile id. Repeatable.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be restored and whether it can be; send nothing.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow it to its end with live progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore archived files from tape to the user data cache."""
    if not (investigation or dataset or datafile):
        raise typer.BadParameter("give at least one --investigation, --dataset or --datafile")
    gateway = _gateway(ctx)
    investigation_ids = [
        found for given in investigation or [] for found in _investigation_ids(gateway, given)
    ]
    if dry_run:
        rows = _preview(gateway, investigation_ids, dataset or [], datafile or [])
        if as_json:
            _print_json(rows)
        else:
            Console().print(restore_preview(rows))
        raise typer.Exit(0 if all(row["restorable"] is not False for row in rows) else 1)
    accepted = gateway.restore(
        investigation_ids=investigation_ids,
        dataset_ids=dataset or [],
        datafile_ids=datafile or [],
    )
    _accepted(ctx, gateway, accepted, wait=wait, as_json=as_json)


def _investigation_ids(gateway: GatewayClient, given: str) -> list[int]:
    """An id as it is; NAME-VISIT (split at the last '-') looked up in ICAT."""
    if given.isdigit():
        return [int(given)]
    name, dash, visit_id = given.rpartition("-")
    found = gateway.find_investigations(name, visit_id) if dash else []
    if not found:
        _fail(f"no investigation {given!r} that you may read (give NAME-VISIT, e.g. ABC123-1)")
    return [int(item["id"]) for item in found]


def _preview(
    gateway: GatewayClient, investigations: list[int], datasets: list[int], datafiles: list[int]
) -> list[dict[str, Any]]:
    """Each selected item with its archival state: only FINISHED ones can be restored."""
    rows: list[dict[str, Any]] = []
    for investigation_id in investigations:
        status = gateway.investigation_status(investigation_id)
        rows.append(
            {
                "kind": "investigation",
                "id": investigation_id,
                "name": f"{status['name']}-{status['visit_id']}",
                "state": status["state"],
                "files": status["files_total"],
                "restorable": status["state"] == "FINISHED",
            }
        )
    for dataset_id in datasets:
        status = gateway.dataset_status(dataset_id, list_files=False)
        rows.append(
            {
                "kind": "dataset",
                "id": dataset_id,
                "name": status["name"],
                "state": status["state"],
                "files": status["files_total"],
                "restorable": status["state"] == "FINISHED",
            }
        )
    # No route tells one datafile's state: the restore itself checks it (409 when not on tape).
    rows.extend(
        {"kind": "datafile", "id": i, "state": None, "files": 1, "restorable": None}
        for i in datafiles
    )
    return rows


@app.command()
@reported
def status(
    ctx: typer.Context,
    request_id: Annotated[
        str | None, typer.Argument(help="A request id; your newest request when not given.")
    ] = None,
    watch: Annotated[bool, typer.Option(help="Follow it to its end with live progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """How a request stands: state, what it waits on, each job's files and bytes."""
    gateway = _gateway(ctx)
    if request_id is None:
        newest = gateway.requests([], limit=1)["items"]
        if not newest:
            _fail("you have no requests yet")
        request_id = str(newest[0]["request_id"])
    if watch:
        raise typer.Exit(_follow(ctx, gateway, request_id, as_json))
    found = gateway.request(request_id)
    if as_json:
        _print_json(found)
    else:
        Console().print(summary(found))


@app.command("requests")
@reported
def list_requests(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option(help="Only requests in this state. Repeatable.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Your requests, newest first."""
    page = _gateway(ctx).requests([s.upper() for s in state or []], limit=limit)
    if as_json:
        _print_json(page)
    elif not page["items"]:
        typer.echo("no requests")
    else:
        Console().print(request_table(page["items"]))


@datasets_app.command("status")
@reported
def datasets_status(
    ctx: typer.Context,
    dataset_id: Annotated[int, typer.Argument(help="The dataset's ICAT id.")],
    as_json: JsonOption = False,
) -> None:
    """A dataset's archival state in ICAT, file by file."""
    found = _gateway(ctx).dataset_status(dataset_id)
    if as_json:
        _print_json(found)
    else:
        Console().print(dataset_status(found))


@app.command()
@reported
def cancel(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to cancel.")],
    as_json: JsonOption = False,
) -> None:
    """Cancel a restore (an archive only by an admin, through the API's force=true)."""
    answer = _gateway(ctx).cancel(request_id)
    if as_json:
        _print_json(answer)
        return
    typer.echo(f"canceling request {answer['request_id']}: {len(answer['canceled_job_ids'])} jobs")
    if answer["pending_job_ids"]:
        typer.echo(
            f"{len(answer['pending_job_ids'])} jobs are not at FTS yet: cancel again in a moment"
        )


@app.command()
@reported
def retry(
    ctx: typer.Context,
    dataset_id: Annotated[int, typer.Argument(help="The dataset whose failed files to archive.")],
    wait: Annotated[bool, typer.Option(help="Follow it to its end with live progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Archive again a dataset's FAILED or CANCELED files, once its archive ended."""
    gateway = _gateway(ctx)
    accepted = gateway.retry(dataset_id)
    if not as_json and not wait:
        typer.echo(f"retrying {len(accepted['datafile_ids'])} datafiles of dataset {dataset_id}")
    _accepted(ctx, gateway, accepted, wait=wait, as_json=as_json)


def main() -> None:
    app(prog_name="datastore")


if __name__ == "__main__":
    main()
