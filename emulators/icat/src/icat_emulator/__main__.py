"""``icat-emulator [--config FILE] [--host H] [--port P] [--database PATH]``"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys

from .config import load_config
from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="icat-emulator", description=__doc__)
    parser.add_argument("--config", help="YAML config (default: built-in defaults)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 18080)")
    parser.add_argument("--database", help="SQLite file (default var/icat/icat.sqlite)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.database:
        config.database = args.database
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # SIGTERM -> normal exit so SQLite is closed cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(config)


if __name__ == "__main__":
    main()
