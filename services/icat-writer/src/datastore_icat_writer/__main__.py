"""``datastore-icat-writer [--config PATH]``: run both consumers until SIGTERM/SIGINT."""

from __future__ import annotations

from datastore_common.settings import command_line, refusing_to_start, settings_from
from datastore_icat_writer.app import main_run


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "datastore-icat-writer",
        "Register archive requests in ICAT and record transfer states there.",
    )
    args = parser.parse_args(argv)
    with refusing_to_start("datastore-icat-writer"):
        settings = settings_from(args)
    main_run(settings)


if __name__ == "__main__":
    main()
