"""Outputs from local storage, at ``{PUBLIC_URL}/files/...``. Stored inputs, and outputs that
a running job has only staged, are never served."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import FileResponse

from hyperlocal.api.deps import Svc
from hyperlocal.errors import NotFoundError
from hyperlocal.storage.local import LocalStorage

router = APIRouter(tags=["files"])

_TYPES = {
    ".glb": "model/gltf-binary",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}


@router.get("/files/{path:path}", include_in_schema=False)
async def get_file(path: str, svc: Svc) -> FileResponse:
    storage = svc.storage
    hidden = any(part.startswith(".") for part in path.split("/"))  # staged outputs, dot-names
    if not isinstance(storage, LocalStorage) or hidden or path.startswith("inputs/"):
        raise NotFoundError("File not found")
    try:
        target = storage.path_for(path)
    except ValueError as exc:
        raise NotFoundError("File not found") from exc
    if not target.is_file():
        raise NotFoundError("File not found")
    suffix = target.suffix.lower()
    media_type = _TYPES.get(suffix) or mimetypes.guess_type(target.name)[0]
    return FileResponse(target, media_type=media_type or "application/octet-stream")
