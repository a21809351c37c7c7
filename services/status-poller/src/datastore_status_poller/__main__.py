"""``datastore-status-poller [--config PATH] [run]``: follow active FTS jobs until SIGTERM.

``datastore-status-poller resync`` rebuilds the delay queue from ICAT after a disaster.
"""

from __future__ import annotations

import asyncio

from datastore_common.settings import command_line, refusing_to_start, settings_from
from datastore_status_poller.app import main_run, resync_from_icat


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "datastore-status-poller", "Follow active FTS3 jobs and publish their state changes."
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "resync"],
        help="run: poll until stopped (default); resync: rebuild the delay queue from ICAT's "
        "jobs in flight after the broker's queues were lost",
    )
    parser.add_argument(
        "--force", action="store_true", help="resync even if the poller queues are not empty"
    )
    args = parser.parse_args(argv)
    with refusing_to_start("datastore-status-poller"):
        settings = settings_from(args)
    if args.command == "resync":
        with refusing_to_start("datastore-status-poller resync"):
            jobs = asyncio.run(resync_from_icat(settings, force=args.force))
        print(f"resync: {jobs} jobs back in the poller's delay queue")
        return
    main_run(settings)


if __name__ == "__main__":
    main()
