"""Outputs from local storage, at ``{PUBLIC_URL}/files/...``. Outputs that a running job has
only staged are never served, and neither are inputs: they live outside this folder
(``storage.private``), but those of jobs from before the private area lie under ``inputs/``.
An output deleted when its retention ran out answers 410.

A path is served only as it is spelled canonically, checked on the raw request path: no
percent-encoding at all (so no double encoding, no encoded ``/`` or ``.``, no overlong UTF-8),
no empty segment, no segment that starts with a dot (``.``, ``..``, staged outputs), and
nothing but ASCII letters, digits, ``_``, ``-`` and ``.``. Every other spelling is 404, before
the disk is looked at: there is one way to name a file, and no way out of the folder.
"""

from __future__ import annotations

import mimetypes
import re

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from hyperlocal.api.deps import Svc
from hyperlocal.core import retention
from hyperlocal.errors import NotFoundError
from hyperlocal.storage.local import LocalStorage

router = APIRouter(tags=["files"])

_TYPES = {
    ".glb": "model/gltf-binary",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@router.get("/files/{path:path}", include_in_schema=False)
async def get_file(path: str, request: Request, svc: Svc) -> FileResponse:
    storage = svc.storage
    canonical = _canonical(path, request.scope.get("raw_path"))
    if not isinstance(storage, LocalStorage) or not canonical or path.startswith("inputs/"):
        raise NotFoundError("File not found")
    target = storage.path_for(path)
    if not target.is_file():
        await retention.check_output(svc.db, path, svc.clock())  # 410 if it expired
        raise NotFoundError("File not found")
    suffix = target.suffix.lower()
    media_type = _TYPES.get(suffix) or mimetypes.guess_type(target.name)[0]
    return FileResponse(target, media_type=media_type or "application/octet-stream")


def _canonical(path: str, raw_path: bytes | None) -> bool:
    """Whether the request spelled ``path`` (as routed, decoded) exactly so, and it is made of
    canonical segments only. ``raw_path`` is the path as sent, where the server gives it."""
    if not all(_SEGMENT.fullmatch(segment) for segment in path.split("/")):
        return False
    sent = raw_path.partition(b"?")[0] if raw_path is not None else None
    return sent is None or sent.endswith(b"/files/" + path.encode("ascii"))
