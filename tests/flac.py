"""Silent FLAC streams written by hand: hours of audio in kilobytes, with any header.

Each frame holds ``BLOCK`` samples per channel in one CONSTANT subframe (a zero), about a dozen
bytes, so two hours at 48 kHz stereo is some 100 kB. ``stated`` is what STREAMINFO claims
(``total_samples``), which may differ from what the frames hold: 0 means "unknown", as a
streaming encoder writes it. The decoders under test are the real ones (libFLAC, FFmpeg).
"""

from __future__ import annotations

import struct

__all__ = ["BLOCK", "silent_flac"]

BLOCK = 65535  # the largest block size FLAC allows: the fewest bytes per second of audio
_BPS = 16
_RATE_CODES = {8000: 0b0100, 16000: 0b0101, 22050: 0b0110, 44100: 0b1001, 48000: 0b1010}


def silent_flac(seconds: float, rate: int, channels: int = 1, stated: float | None = None) -> bytes:
    """``seconds`` of silence; STREAMINFO states ``stated`` seconds (default: the truth)."""
    samples = round(seconds * rate)
    total = samples if stated is None else round(stated * rate)
    frames = [
        _frame(number, min(BLOCK, samples - start), rate, channels)
        for number, start in enumerate(range(0, samples, BLOCK))
    ]
    return b"fLaC" + _streaminfo(rate, channels, total) + b"".join(frames)


def _streaminfo(rate: int, channels: int, total: int) -> bytes:
    packed = rate << 44 | (channels - 1) << 41 | (_BPS - 1) << 36 | total
    body = struct.pack(">HH", 16, BLOCK) + b"\0" * 6 + packed.to_bytes(8, "big") + b"\0" * 16
    return bytes([0x80]) + len(body).to_bytes(3, "big") + body  # last block, type STREAMINFO


def _frame(number: int, size: int, rate: int, channels: int) -> bytes:
    header = bytes([0xFF, 0xF8, 0b0111 << 4 | _RATE_CODES[rate], (channels - 1) << 4 | 0b1000])
    header += _utf8(number) + struct.pack(">H", size - 1)
    header += bytes([_crc8(header)])
    body = header + b"\0\0\0" * channels  # per channel: CONSTANT subframe, then 16-bit zero
    return body + struct.pack(">H", _crc16(body))


def _utf8(value: int) -> bytes:
    """FLAC's frame number coding: UTF-8 stretched to 36 bits."""
    if value < 0x80:
        return bytes([value])
    tail: list[int] = []
    while not tail or value >= 1 << (6 - len(tail)):  # the lead byte keeps 6 - len(tail) bits
        tail.insert(0, 0x80 | value & 0x3F)
        value >>= 6
    return bytes([(0xFF << (7 - len(tail))) & 0xFF | value, *tail])


def _table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = (crc << 1 ^ poly) & mask if crc & top else crc << 1 & mask
        table.append(crc)
    return table


_CRC8, _CRC16 = _table(0x07, 8), _table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (crc << 8 & 0xFFFF) ^ _CRC16[crc >> 8 ^ byte]
    return crc
