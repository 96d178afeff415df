"""Uploaded photos: which format the bytes are, how large the image says it is, and decoding it safely.

The size is read from the file's own header before decoding, so a small file that claims to be huge (a
decompression bomb) is refused before the decoder allocates anything.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from emotiond.core.protocol import jpeg_size

CONTENT_TYPES = {"image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp", "image/bmp": "bmp"}


class ImageError(ValueError):
    """Bytes that are not a supported image. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> str | None:
    """The format from the magic bytes: jpeg, png, webp, bmp, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    return None


def declared_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the header, or None if the header is unreadable."""
    try:
        if kind == "jpeg":
            size = jpeg_size(data)
            return (size[1], size[0]) if size else None
        if kind == "png":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if kind == "bmp":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if kind == "webp":
            return _webp_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """A BGR image from uploaded bytes, or ImageError (400 not an image, 413 too many pixels)."""
    if not data:
        raise ImageError(400, "empty body: send a JPEG, PNG, WebP or BMP image")
    kind = sniff(data)
    if kind is None:
        raise ImageError(400, "not an image: send a JPEG, PNG, WebP or BMP file")
    size = declared_size(data, kind)
    if size is None or min(size) < 1:
        raise ImageError(400, f"unreadable {kind.upper()} header")
    if size[0] * size[1] > max_pixels:
        raise ImageError(413, f"image of {size[0]}x{size[1]} pixels is larger than the limit of {max_pixels} "
                              "pixels ([web] max_upload_pixels)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(400, f"the {kind.upper()} data does not decode (truncated or corrupt)")
    return image
