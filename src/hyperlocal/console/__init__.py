"""The web console: a static single-page app served at ``/console``.

The page is built from ``console/`` at the repository root (``npm ci && npm run build``) into
``static/`` here, and ships inside the package, so a server needs no Node at run time. The
page itself needs no key: it asks the user for one and calls the API with it, so serving the
page reveals nothing that ``/openapi.json`` does not.

Every file under ``assets/`` has a content hash in its name, so browsers may keep it for a
year; ``index.html`` names the current hashes and is revalidated on each load, so a new build
is picked up at once.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from hyperlocal.errors import NotFoundError

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"
_ASSETS = STATIC_DIR / "assets"

_IMMUTABLE = "public, max-age=31536000, immutable"
# Only what the build writes is served; anything else under assets/ is a 404.
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/console", methods=["GET", "HEAD"])
@router.api_route("/console/", methods=["GET", "HEAD"])
async def console_page() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise NotFoundError("Console not built: run `npm ci && npm run build` in console/")
    return FileResponse(
        page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.api_route("/console/assets/{name:path}", methods=["GET", "HEAD"])
async def console_asset(name: str) -> FileResponse:
    target = _asset_path(name)
    return FileResponse(
        target, media_type=_TYPES[target.suffix], headers={"Cache-Control": _IMMUTABLE}
    )


def _asset_path(name: str) -> Path:
    """The file for ``name`` under ``assets/``; never a path outside it, nor an unknown type."""
    root = _ASSETS.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root) or target.suffix not in _TYPES or not target.is_file():
        raise NotFoundError("Asset not found")
    return target
