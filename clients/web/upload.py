"""``POST /api/analyze``: a photo as the body or as a multipart file, read within the size limit, checked and
decoded safely, then analysed by the in-process pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from emotiond.clients.web.analysis import BusyError, UnavailableError
from emotiond.clients.web.context import ANALYSIS, SETTINGS
from emotiond.clients.web.images import CONTENT_TYPES, ImageError, decode_image
from emotiond.clients.web.responses import json_error

log = logging.getLogger(__name__)


async def _read_capped(read: Callable[[int], Awaitable[bytes]], limit: int) -> bytes:
    """The whole body from ``read(n)`` (b"" at its end), refused with 413 as soon as it passes ``limit``."""
    chunks, size = [], 0
    while chunk := await read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ImageError(413, f"the upload is larger than the limit of {limit} bytes ([web] max_upload_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_bytes(request: web.Request, limit: int) -> bytes:
    content_type = request.content_type
    if request.content_length is not None and request.content_length > limit + (
            64 * 1024 if content_type == "multipart/form-data" else 0):
        raise ImageError(413, f"the upload is larger than the limit of {limit} bytes ([web] max_upload_bytes)")
    if content_type in CONTENT_TYPES:
        return await _read_capped(request.content.read, limit)
    if content_type == "multipart/form-data":
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    raise ImageError(400, "the form holds no file: send the photo in a field named 'image'")
                if isinstance(part, BodyPartReader) and (part.filename or part.name in ("image", "file")):
                    return await _read_capped(part.read_chunk, limit)
                if isinstance(part, BodyPartReader):
                    await part.release()
        except ImageError:
            raise
        except (ValueError, AssertionError, HttpProcessingError) as exc:  # aiohttp's multipart reader on a broken body
            detail = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
            raise ImageError(400, f"malformed multipart body: {' '.join(detail.split())[:200]}") from None
    raise ImageError(415, f"unsupported content type {content_type!r}: send an image "
                          f"({', '.join(CONTENT_TYPES)}) as the body, or multipart/form-data with an 'image' file")


async def analyze(request: web.Request) -> web.Response:
    web_settings = request.app[SETTINGS].web
    try:
        data = await _upload_bytes(request, web_settings.max_upload_bytes)
        image = await asyncio.get_running_loop().run_in_executor(None, decode_image, data,
                                                                 web_settings.max_upload_pixels)
    except ImageError as exc:
        return json_error(exc.status, str(exc))
    try:
        reply = await request.app[ANALYSIS].analyse(image)
    except BusyError as exc:
        return json_error(503, str(exc), headers={"Retry-After": "2"})
    except UnavailableError as exc:
        log.error("photo analysis unavailable: %s", exc)
        return json_error(503, f"photo analysis unavailable: {exc}")
    return web.json_response(reply)

