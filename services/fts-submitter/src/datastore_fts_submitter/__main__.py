"""``datastore-fts-submitter [--config PATH]``: run the worker until SIGTERM/SIGINT."""

from __future__ import annotations

from datastore_common.settings import command_line, refusing_to_start, settings_from
from datastore_fts_submitter.app import main_run


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "datastore-fts-submitter", "Submit planned archive and restore jobs to FTS3."
    )
    args = parser.parse_args(argv)
    with refusing_to_start("datastore-fts-submitter"):
        settings = settings_from(args)
    main_run(settings)


if __name__ == "__main__":
    main()
