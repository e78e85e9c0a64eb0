"""Request guards: body size limits, same-origin checks for writes, and image checks before decoding."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rsvg.data.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, ImageLimits, check_image_side, header_size
from rsvg.errors import GuardError, ImageReadError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Limits:
    """Upload and image limits of one server (the image limits default to ``rsvg ground``'s,
    :data:`rsvg.data.image_io.MAX_IMAGE_PIXELS` and :data:`~rsvg.data.image_io.MAX_IMAGE_SIDE`)."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_image_side: int = MAX_IMAGE_SIDE
    max_ground_requests: int = 4  # grounding requests in the server at once; more get 429 at once

    def __post_init__(self) -> None:
        if self.max_ground_requests < 1:
            raise ValueError(f"max_ground_requests must be at least 1, got {self.max_ground_requests}")

    @property
    def images(self) -> ImageLimits:
        """The image limits as the image readers take them."""
        return ImageLimits(self.max_image_pixels, self.max_image_side)


async def _send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class GuardMiddleware:
    """ASGI middleware in front of the app.

    * Writes (POST, PUT, ...) from another origin are refused (403), so a web page elsewhere cannot make the
      browser of an annotator post decisions or uploads to this local server.
    * Request bodies are read up to the path's limit before the app sees them: a larger one is answered with
      413 at once (by its Content-Length, or as soon as the streamed bytes pass the limit), so a huge upload
      never reaches the multipart parser or the disk.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        host = _header(scope, b"host")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != host):
            await _send_error(send, 403, f"cross-origin request from {origin} refused")
            return
        limit = self.limit_for(scope["path"])
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_error(send, 400, "malformed Content-Length header")
                return
            if int(length) > limit:
                await _send_error(send, 413, f"request body of {int(length)} bytes is over the limit of {limit} bytes")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_error(send, 413, f"request body is over the limit of {limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def check_image_header(data: bytes, limits: Limits) -> tuple[int, int]:
    """``(width, height)`` from the image header, before any pixel is decoded.

    Raises :class:`GuardError`: 400 for an empty upload, 415 for bytes that are no image, 413 for an image over
    the pixel or side limit (a "decompression bomb": a small file that would decode to gigabytes), 422 for one
    under :data:`~rsvg.data.image_io.MIN_IMAGE_SIDE` pixels a side.
    """
    if not data:
        raise GuardError(400, "the uploaded image is empty")
    try:
        width, height = header_size(data, "upload")
    except ImageReadError:
        raise GuardError(415, "not an image: upload a JPEG, PNG, TIFF, BMP or WebP file") from None
    problem = limits.images.problem(width, height)
    if problem is not None:
        raise GuardError(413, f"the image is {problem}")
    try:
        check_image_side(width, height, "upload")
    except ImageReadError as exc:
        raise GuardError(422, str(exc)) from None
    return width, height
