"""``datastore-icat-writer [--config PATH]``: run both consumers until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os

from datastore_common.settings import CONFIG_ENV, load_settings
from datastore_icat_writer.app import main_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="datastore-icat-writer",
        description="Register archive requests in ICAT and record transfer states there.",
    )
    parser.add_argument(
        "--config", help=f"config.yaml to read (default: ${CONFIG_ENV} or ./config.yaml)"
    )
    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG_ENV] = args.config
    main_run(load_settings())


if __name__ == "__main__":
    main()
