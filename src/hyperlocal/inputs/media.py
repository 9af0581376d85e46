"""Checking that input bytes are the medium they claim to be, and naming their content type.

Images are fully decoded with Pillow, since a header alone says little about whether an engine
can use the file. Audio and video are recognised by their container signature (plus a
structural walk for WAV), then ``media_seconds`` reads their length and checks the model's
caps from the container's headers (``engines.media.bounded``): engines decode them later, in
bounded chunks.
"""

from __future__ import annotations

import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from io import BytesIO

from PIL import Image

from hyperlocal.engines.base import MediaCaps, MediaKind
from hyperlocal.engines.media.bounded import audio_length, video_length
from hyperlocal.errors import MediaInputError

__all__ = ["MAX_PIXELS", "check_media", "media_seconds"]

MAX_PIXELS = 40_000_000
"""The largest image accepted, in pixels. Below Pillow's own bomb limit (about 89 million)."""

# Pillow is asked for these formats only: of its many readers, some hand the bytes to external
# programs (EPS runs Ghostscript), and none of the others is worth the attack surface.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_IMAGE_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG from cameras; Pillow opens it for "JPEG"
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}

# warnings.catch_warnings() swaps a process-wide filter list, so two threads inside it at once
# could leave one thread's filter installed for good. Header reads are quick; take turns.
_WARNINGS_LOCK = threading.Lock()

Sniffer = Callable[[bytes], str | None]


def check_media(field: str, kind: MediaKind, data: bytes) -> str:
    """Return the content type of ``data``, or raise :class:`MediaInputError` naming ``field``.

    CPU-bound for large images: call it from a worker thread in async code.
    """
    if kind is MediaKind.IMAGE:
        return _check_image(field, data)
    sniffers = _AUDIO_SNIFFERS if kind is MediaKind.AUDIO else _VIDEO_SNIFFERS
    for sniff in sniffers:
        content_type = sniff(data)
        if content_type is not None:
            return content_type
    raise _invalid(field, kind)


def media_seconds(field: str, kind: MediaKind, data: bytes, caps: MediaCaps) -> float | None:
    """The length of audio or video ``data`` once checked against ``caps`` (None for images,
    and for a video whose headers do not say), or raise :class:`MediaInputError` naming
    ``field``. Audio whose headers do not say is counted by decoding it, within the caps.

    Blocking (FFmpeg): call it from a worker thread in async code.
    """
    if kind is MediaKind.AUDIO:
        return audio_length(data, field, caps)
    if kind is MediaKind.VIDEO:
        return video_length(data, field, caps)
    return None


def _invalid(field: str, kind: MediaKind) -> MediaInputError:
    return MediaInputError(field, f"not a valid {kind.value}")


# --- images -----------------------------------------------------------------------------------


def _check_image(field: str, data: bytes) -> str:
    width, height = _image_size(field, data)
    # Checked before any pixel is decoded: a small file can claim a huge canvas.
    if width * height > MAX_PIXELS:
        raise MediaInputError(field, f"larger than {MAX_PIXELS} pixels")
    try:
        return _decode_image(data)
    except Exception as exc:  # a decoder fed hostile bytes may fail in any way; all mean "invalid"
        raise _invalid(field, MediaKind.IMAGE) from exc


def _image_size(field: str, data: bytes) -> tuple[int, int]:
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=_IMAGE_FORMATS) as probe:
                return probe.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaInputError(field, f"larger than {MAX_PIXELS} pixels") from exc
    except Exception as exc:  # see _check_image
        raise _invalid(field, MediaKind.IMAGE) from exc


def _decode_image(data: bytes) -> str:
    # verify() checks structure and checksums but leaves the image unusable, so decode a fresh
    # copy too: load() is what notices truncated pixel data.
    with Image.open(BytesIO(data), formats=_IMAGE_FORMATS) as probe:
        probe.verify()
    with Image.open(BytesIO(data), formats=_IMAGE_FORMATS) as image:
        image.load()
        return _IMAGE_TYPES[image.format or ""]


# --- containers shared by audio and video ------------------------------------------------------


def _ftyp_brands(data: bytes) -> list[bytes]:
    """The major and compatible brands of an ISO base media file (MP4, MOV, M4A), or []."""
    if data[4:8] != b"ftyp":
        return []
    size = min(int.from_bytes(data[:4], "big"), len(data))
    if size < 16:
        return []
    return [data[8:12]] + [data[at : at + 4] for at in range(16, size - 3, 4)]


def _ebml_doctype(data: bytes) -> bytes | None:
    """The DocType (``webm``, ``matroska``) of an EBML file, or None."""
    if data[:4] != b"\x1a\x45\xdf\xa3":
        return None
    at = data.find(b"\x42\x82", 4, 64)  # the DocType element's id
    if at < 0 or len(data) < at + 3 or not data[at + 2] & 0x80:
        return None
    size = data[at + 2] & 0x7F  # a one-byte length, as every muxer writes it
    return data[at + 3 : at + 3 + size].rstrip(b"\x00")


# --- audio ------------------------------------------------------------------------------------

_M4A_BRANDS = (b"M4A ", b"M4B ", b"M4P ")


def _wav(data: bytes) -> str | None:
    # Walked by hand rather than with the wave module: wave (3.11) refuses float and
    # WAVE_FORMAT_EXTENSIBLE files and does not notice a data chunk cut short.
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    chunks = dict(_riff_chunks(data))
    fmt, samples = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or samples is None or len(fmt) < 16:
        return None
    _, channels, rate, _, block_align = struct.unpack_from("<HHIIH", fmt)
    if min(channels, rate, block_align) == 0 or len(samples) < block_align:
        return None
    return "audio/wav"


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Each whole chunk after the RIFF header; stops at the first one cut short."""
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        start = offset + 8
        if start + size > len(data):
            return
        yield chunk_id, data[start : start + size]
        offset = start + size + (size & 1)  # chunks are padded to an even length


def _ogg(data: bytes) -> str | None:
    return "audio/ogg" if data[:4] == b"OggS" else None


def _flac(data: bytes) -> str | None:
    return "audio/flac" if data[:4] == b"fLaC" else None


def _m4a(data: bytes) -> str | None:
    brands = _ftyp_brands(data)
    return "audio/mp4" if any(brand in _M4A_BRANDS for brand in brands) else None


def _webm_audio(data: bytes) -> str | None:
    return {b"webm": "audio/webm", b"matroska": "audio/x-matroska"}.get(_ebml_doctype(data) or b"")


_FRAME_SYNC = re.compile(rb"\xff[\xe0-\xff]")
_SYNC_WINDOW = 4096  # encoders may leave padding or junk between an ID3 tag and the first frame


def _mpeg_audio(data: bytes) -> str | None:
    """MP3 (optionally after an ID3v2 tag) or raw ADTS AAC, by the first frame header."""
    start = _id3_end(data)
    if start is None:
        return None
    window = data[start : start + _SYNC_WINDOW] if start else data[:4]
    for match in _FRAME_SYNC.finditer(window):
        header = window[match.start() : match.start() + 4]
        if _is_adts_header(header):
            return "audio/aac"
        if _is_mp3_header(header):
            return "audio/mpeg"
    return None


def _id3_end(data: bytes) -> int | None:
    """Where audio starts after an ID3v2 tag: 0 with no tag, None for a malformed one."""
    if data[:3] != b"ID3":
        return 0
    size_bytes = data[6:10]
    if len(size_bytes) < 4 or data[3] == 0xFF or any(b & 0x80 for b in size_bytes):
        return None
    size = 0
    for byte in size_bytes:  # "synchsafe": seven bits per byte
        size = size << 7 | byte
    return 10 + size


def _is_mp3_header(header: bytes) -> bool:
    if len(header) < 4:
        return False
    version, layer = header[1] >> 3 & 3, header[1] >> 1 & 3
    bitrate, sample_rate = header[2] >> 4, header[2] >> 2 & 3
    return version != 1 and layer != 0 and bitrate != 15 and sample_rate != 3


def _is_adts_header(header: bytes) -> bool:
    return len(header) >= 4 and header[1] & 0xF6 == 0xF0 and header[2] >> 2 & 0xF < 13


_AUDIO_SNIFFERS: tuple[Sniffer, ...] = (_wav, _ogg, _flac, _m4a, _webm_audio, _mpeg_audio)


# --- video ------------------------------------------------------------------------------------


def _iso_video(data: bytes) -> str | None:
    brands = _ftyp_brands(data)
    if not brands or brands[0] in _M4A_BRANDS:
        return None
    return "video/quicktime" if brands[0] == b"qt  " else "video/mp4"


def _webm_video(data: bytes) -> str | None:
    return {b"webm": "video/webm", b"matroska": "video/x-matroska"}.get(_ebml_doctype(data) or b"")


_VIDEO_SNIFFERS: tuple[Sniffer, ...] = (_iso_video, _webm_video)
