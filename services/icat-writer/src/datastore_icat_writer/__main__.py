"""``datastore-icat-writer [--config PATH]``: run both consumers until SIGTERM/SIGINT."""

from __future__ import annotations

from datastore_common.settings import command_line, settings_from
from datastore_icat_writer.app import main_run


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "datastore-icat-writer",
        "Register archive requests in ICAT and record transfer states there.",
    )
    main_run(settings_from(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
