"""check_media on real files built in memory: images through Pillow, audio and video headers."""

from __future__ import annotations

import random
import struct
import warnings
import zlib
from io import BytesIO

import pytest
from PIL import Image

from hyperlocal.engines.base import MediaKind
from hyperlocal.errors import MediaInputError
from hyperlocal.inputs import MAX_PIXELS, check_media
from tests.inputs.conftest import image_bytes, pcm_wav

IMAGE, AUDIO, VIDEO = MediaKind.IMAGE, MediaKind.AUDIO, MediaKind.VIDEO
JUNK = bytes(random.Random(7).randrange(0, 0xE0) for _ in range(4096))  # never a frame sync


def refusal(kind: MediaKind, data: bytes, field: str = "input") -> str:
    with pytest.raises(MediaInputError) as caught:
        check_media(field, kind, data)
    return caught.value.message


def noisy_image(fmt: str) -> bytes:
    # Noise does not compress, so cutting the file in half cuts into pixel data.
    noise = random.Random(1).randbytes(96 * 96 * 3)
    buffer = BytesIO()
    Image.frombytes("RGB", (96, 96), noise).save(buffer, fmt)
    return buffer.getvalue()


def bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, compressed row by row so it stays small to build."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def float_wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)  # WAVE_FORMAT_IEEE_FLOAT
    samples = b"\x00\x00\x80\x3f" * 100
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    payload = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(payload)) + b"ftyp" + payload + b"\x00\x00\x00\x08free"


def ebml(doctype: bytes) -> bytes:
    element = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(element) + 4]) + b"\x42\x86\x81\x01" + element


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {
        "over our cap": bilevel_png(8000, 6000),  # 48 Mpx
        "over Pillow's warning limit": bilevel_png(10000, 10000),  # 100 Mpx
        "over Pillow's error limit": bilevel_png(20000, 20000),  # 400 Mpx
    }


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_valid_images(fmt: str, content_type: str) -> None:
    assert check_media("image", IMAGE, image_bytes(fmt)) == content_type


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_refused(fmt: str) -> None:
    whole = noisy_image(fmt)
    assert check_media("image", IMAGE, whole)
    assert refusal(IMAGE, whole[: len(whole) // 2], "image") == "image: not a valid image"


@pytest.mark.parametrize("data", [b"", JUNK, b"\x89PNG\r\n\x1a\n" + JUNK, pcm_wav()])
def test_non_images_are_refused(data: bytes) -> None:
    assert refusal(IMAGE, data, "image") == "image: not a valid image"


def test_formats_outside_the_allow_list_are_refused() -> None:
    # TIFF decodes fine in Pillow, but its readers are not worth the attack surface.
    assert refusal(IMAGE, image_bytes("TIFF")) == "input: not a valid image"


@pytest.mark.parametrize(
    "case", ["over our cap", "over Pillow's warning limit", "over Pillow's error limit"]
)
def test_decompression_bombs_are_refused(bombs: dict[str, bytes], case: str) -> None:
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    assert len(bombs[case]) < 100_000
    assert refusal(IMAGE, bombs[case], "image") == f"image: larger than {MAX_PIXELS} pixels"
    # Nothing global was left changed.
    assert (Image.MAX_IMAGE_PIXELS, warnings.filters) == (limit, filters)


def test_image_at_the_pixel_cap_is_accepted() -> None:
    assert check_media("image", IMAGE, bilevel_png(8000, 5000)) == "image/png"


# --- audio ------------------------------------------------------------------------------------

ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10
MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 200
ADTS_FRAME = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 60


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (pcm_wav(), "audio/wav"),
        (float_wav(), "audio/wav"),
        (ID3 + MP3_FRAME, "audio/mpeg"),
        (ID3 + b"\x00\xff\xe0\x00" * 5 + MP3_FRAME, "audio/mpeg"),  # junk before the first frame
        (MP3_FRAME, "audio/mpeg"),
        (ADTS_FRAME, "audio/aac"),
        (b"OggS\x00\x02" + b"\x00" * 60, "audio/ogg"),
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 60, "audio/flac"),
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
        (ebml(b"webm"), "audio/webm"),
    ],
)
def test_valid_audio(data: bytes, content_type: str) -> None:
    assert check_media("audio", AUDIO, data) == content_type


def test_truncated_wav_is_refused() -> None:
    whole = pcm_wav()
    assert refusal(AUDIO, whole[:-100], "audio") == "audio: not a valid audio"


@pytest.mark.parametrize(
    "data",
    [
        pcm_wav(frames=0),  # a header with no samples
        b"RIFF\x24\x00\x00\x00WAVEfmt " + JUNK[:40],  # garbage where the format should be
        b"",
        JUNK,
        b"ID3\x04\x00\x00\x80\x80\x80\x80" + MP3_FRAME,  # a malformed tag size
        ID3,  # a tag and no audio
        image_bytes("PNG"),
        ftyp(b"isom", b"isom", b"avc1"),  # an MP4 video is not audio
    ],
)
def test_non_audio_is_refused(data: bytes) -> None:
    assert refusal(AUDIO, data, "audio") == "audio: not a valid audio"


# --- video ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (ebml(b"webm"), "video/webm"),
        (ebml(b"matroska"), "video/x-matroska"),
    ],
)
def test_valid_video(data: bytes, content_type: str) -> None:
    assert check_media("video", VIDEO, data) == content_type


@pytest.mark.parametrize(
    "data",
    [
        b"",
        JUNK,
        b"\x00\x00\x00\x08ftyp" + JUNK[:40],  # a box too short to hold a brand
        ftyp(b"M4A ", b"M4A "),  # audio-only
        pcm_wav(),
        ebml(b"other"),
        b"\x1a\x45\xdf\xa3" + JUNK[:60],  # EBML with no DocType
    ],
)
def test_non_video_is_refused(data: bytes) -> None:
    assert refusal(VIDEO, data, "video") == "video: not a valid video"
