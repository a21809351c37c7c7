"""``datastore-gateway [--config PATH] [serve]`` runs the HTTP server (uvicorn);
``datastore-gateway openapi [--output FILE]`` writes the OpenAPI document."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datastore_common.adapters.fts3.transfer_service import require_private_credentials
from datastore_common.logging import configure_logging
from datastore_common.settings import (
    DatastoreSettings,
    command_line,
    refusing_to_start,
    settings_from,
)

DEFAULT_OPENAPI_PATH = Path("docs/openapi.json")


def openapi_document() -> str:
    """The OpenAPI document as committed in docs/openapi.json (independent of configuration)."""
    from datastore_gateway.main import create_app

    app = create_app(DatastoreSettings.model_construct())
    return json.dumps(app.openapi(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = command_line("datastore-gateway", "Datastore's HTTP gateway (archive, restore, jobs).")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", type=Path, default=DEFAULT_OPENAPI_PATH)
    args = parser.parse_args(argv)

    if args.command == "openapi":
        args.output.write_text(openapi_document())
        print(f"wrote {args.output}", file=sys.stderr)
        return
    with refusing_to_start("datastore-gateway"):
        settings = settings_from(args)
        # Before uvicorn: its lifespan would bury the reason in a traceback.
        require_private_credentials(settings)
    configure_logging("gateway", level=settings.log.level, fmt=settings.log.format)

    import uvicorn

    from datastore_gateway.main import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_config=None,  # structlog owns the log lines
        access_log=False,  # RequestContext logs every exchange with its http_request_id
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
