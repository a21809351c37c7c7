"""``datastore-status-poller [--config PATH] [run]``: follow active FTS jobs until SIGTERM.

``datastore-status-poller resync`` rebuilds the delay queue from ICAT after a disaster.
"""

from __future__ import annotations

import argparse
import os

from datastore_common.settings import CONFIG_ENV, load_settings
from datastore_status_poller.app import main_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="datastore-status-poller",
        description="Follow active FTS3 jobs and publish their state changes.",
    )
    parser.add_argument(
        "--config", help=f"config.yaml to read (default: ${CONFIG_ENV} or ./config.yaml)"
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run"],
        help="run: poll until stopped (default)",
    )
    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV] = args.config
    settings = load_settings()
    main_run(settings)


if __name__ == "__main__":
    main()
