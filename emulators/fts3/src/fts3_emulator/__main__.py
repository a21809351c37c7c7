"""``fts3-emulator`` / ``python -m fts3_emulator``: serve the FTS3 REST API over HTTPS."""

from __future__ import annotations

import sys

from fts3_emulator.config import load_settings
from fts3_emulator.server import serve


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    serve(settings)


if __name__ == "__main__":
    main()
