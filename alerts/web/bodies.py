"""Reading a request body under a size limit: the one reader of the JSON API and the public forms."""

from __future__ import annotations

from aiohttp import web

from alerts.core.errors import PayloadTooLarge


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never buffered further)."""
    too_big = PayloadTooLarge(f"body: larger than the limit of {limit} bytes.", details={"limit": limit})
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)
