"""GET /ui: the web page (static files in ``datastore_gateway/ui``), public like /docs.

The page holds no data: it logs in with ``POST /login`` and reads everything else from the
JSON routes with the session as bearer, so serving it needs no session. Only the files named
in :data:`UI_FILES` are served (no path from the URL reaches the file system). Not in the
OpenAPI document: it is not part of the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
#: URL path -> (file in UI_DIR, media type).
UI_FILES = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/logic.js": ("logic.js", "text/javascript; charset=utf-8"),
    "/ui/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: The page may be cached briefly; a new gateway version is picked up within a minute.
CACHE_CONTROL = "public, max-age=60"

router = APIRouter(include_in_schema=False)


def _serve(path: str) -> None:
    name, media_type = UI_FILES[path]

    async def serve() -> FileResponse:
        return FileResponse(
            UI_DIR / name, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL}
        )

    serve.__name__ = f"ui_{name.replace('.', '_')}"
    router.add_api_route(path, serve, methods=["GET"])


for _path in UI_FILES:
    _serve(_path)
