"""``POST /api/ground`` and the dataset's images: what the grounding page uses."""

from __future__ import annotations

import base64
import time
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from rsvg.data.image_io import ImageReadError, check_image_side, decode_image_rgb, picture_notes
from rsvg.data.tokenizer import QueryTooLongError
from rsvg.geo.upload import SceneUploadError, decode_scene_upload
from rsvg.web.context import WebContext, get_context
from rsvg.web.guards import GuardError, check_image_header
from rsvg.web.schemas import DatasetImage, ErrorResponse, GroundResponse, Status, Timing

router = APIRouter()
BROWSER_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
ATTENTION_SIDE = 256  # the heatmap is sent small; the page stretches it over the image

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 404, 413, 415, 422, 429, 503)}


def attention_data_url(attention: np.ndarray) -> str:
    """An H×W map in 0..1 as a JET-coloured PNG data URL, at most ``ATTENTION_SIDE`` pixels a side."""
    h, w = attention.shape
    scale = min(1.0, ATTENTION_SIDE / max(h, w))
    small = cv2.resize(
        attention.astype(np.float32), (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    heat = cv2.applyColorMap(np.clip(small * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    ok, buf = cv2.imencode(".png", heat)
    if not ok:  # pragma: no cover - encoding a small uint8 image does not fail
        raise RuntimeError("could not encode the attention map")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def _decode(ctx: WebContext, data: bytes) -> tuple[np.ndarray, list[str]]:
    """The upload as RGB and what reading it as 8-bit RGB changed (:func:`~rsvg.data.image_io.picture_notes`);
    an :class:`HTTPException` for what cannot be grounded: 400 empty, 413 over the limits (from the header),
    415 not an image, 422 under :data:`~rsvg.data.image_io.MIN_IMAGE_SIDE` pixels a side."""
    try:
        # a georeferenced, 16-bit, float or many-band TIFF is read as a scene is (bands, stretch, nodata)
        rgb = decode_scene_upload(data, ctx.limits.max_image_pixels, ctx.limits.max_image_side)
        notes: list[str] = []
        if rgb is None:
            check_image_header(data, ctx.limits)
            rgb = decode_image_rgb(data, "upload", ctx.limits.images)
            notes = picture_notes(data, "upload")
    except (GuardError, SceneUploadError) as exc:
        raise HTTPException(exc.status, exc.detail) from None
    except ImageReadError:
        raise HTTPException(415, "not a readable image: upload a JPEG, PNG, TIFF, BMP or WebP file") from None
    try:
        check_image_side(rgb.shape[1], rgb.shape[0], "upload")
    except ImageReadError as exc:
        raise HTTPException(422, str(exc)) from None
    return rgb, notes


def _predict(ctx: WebContext, data: bytes, query: str, attention: bool, started: float) -> GroundResponse:
    """Check, decode and ground (runs in a worker thread, never on the event loop)."""
    grounder = ctx.require_grounder()
    t0 = time.perf_counter()
    rgb, notes = _decode(ctx, data)
    t1 = time.perf_counter()
    with ctx.model_lock:
        t_model = time.perf_counter()
        try:
            result = grounder.predict(rgb, query, return_attention=attention)
        except QueryTooLongError as exc:
            raise HTTPException(422, str(exc)) from None
        except ImageReadError as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        t2 = time.perf_counter()
    warn = getattr(grounder, "query_warning", None)  # stand-in models of tests may lack it
    unknown = warn(query) if warn is not None else None
    return GroundResponse(
        query=query,
        box=[round(v, 2) for v in result.box],
        width=result.width,
        height=result.height,
        score=None if result.score is None else round(result.score, 4),
        warnings=([unknown] if unknown else []) + notes,
        timing=Timing(
            decode_ms=round((t1 - t0) * 1000, 2),
            inference_ms=round((t2 - t_model) * 1000, 2),
            total_ms=round((time.perf_counter() - started) * 1000, 2),
        ),
        attention_png=attention_data_url(result.attention) if result.attention is not None else None,
        steps=dict(result.steps),
        first_look_box=[round(v, 2) for v in result.first_look_box] if result.first_look_box else None,
        provenance=result.provenance(),
    )


@router.post("/api/ground", response_model=GroundResponse, responses=_ERRORS, tags=["grounding"])
async def ground(
    query: Annotated[str, Form(max_length=2000, description='The referring expression, e.g. "the red vehicle".')],
    image: Annotated[UploadFile | None, File(description="The image (JPEG, PNG, TIFF, BMP, WebP).")] = None,
    dataset_image: Annotated[
        str | None, Form(max_length=200, description="Instead of an upload: the id of an image of the dataset.")
    ] = None,
    attention: Annotated[bool, Form(description="Also return the attention map as a PNG data URL.")] = False,
    ctx: WebContext = Depends(get_context),
) -> GroundResponse:
    """Ground a query on an image: the box in original pixels, the image size and the time taken.

    Send ``multipart/form-data`` with ``image`` (a file) or ``dataset_image`` (an image id of the loaded
    dataset), and ``query``. The box is clipped to the image; ``warnings`` says when the answer means little
    (a query mostly unknown to the text encoder, as ``rsvg ground`` warns) or the image was changed to be read
    (16-bit, transparent pixels). Errors: 400 (no image or both), 404 (unknown dataset image), 413 (upload or
    image too large), 415 (not an image), 422 (empty or too long query, image under 8 pixels a side), 429 (the
    server already holds its limit of grounding requests: try again shortly), 503 (no model loaded).
    """
    started = time.perf_counter()
    ctx.require_grounder()
    if not ctx.ground_slots.acquire(blocking=False):
        raise HTTPException(
            429,
            f"the server is grounding {ctx.limits.max_ground_requests} requests already: try again shortly",
            headers={"Retry-After": "1"},
        )
    try:
        return await _ground_request(ctx, query, image, dataset_image, attention, started)
    finally:
        ctx.ground_slots.release()


async def _ground_request(
    ctx: WebContext,
    query: str,
    image: UploadFile | None,
    dataset_image: str | None,
    attention: bool,
    started: float,
) -> GroundResponse:
    """Read the upload or the dataset image, then ground in a worker thread (within one grounding slot)."""
    if (image is None) == (dataset_image is None):
        raise HTTPException(400, "send either an image file (field 'image') or a dataset image id ('dataset_image')")
    if image is not None:
        data = await image.read()
    else:
        dataset, _ = ctx.require_dataset()
        path = dataset.image_path(str(dataset_image))
        if path is None:
            raise HTTPException(404, f"no image {dataset_image!r} in the dataset")
        data = await run_in_threadpool(path.read_bytes)
    return await run_in_threadpool(_predict, ctx, data, query, attention, started)


@router.get("/api/status", response_model=Status, tags=["server"])
def status(ctx: WebContext = Depends(get_context)) -> Status:
    """What is loaded (model, dataset) and the upload limits."""
    return Status(
        model_loaded=ctx.grounder is not None,
        checkpoint=ctx.checkpoint.name if ctx.checkpoint is not None else None,
        dataset=ctx.dataset.root.name if ctx.dataset is not None else None,
        objects=len(ctx.dataset) if ctx.dataset is not None else 0,
        images=len(ctx.dataset.images) if ctx.dataset is not None else 0,
        max_upload_bytes=ctx.limits.max_upload_bytes,
        max_image_pixels=ctx.limits.max_image_pixels,
        max_image_side=ctx.limits.max_image_side,
    )


@router.get("/api/dataset/images", response_model=list[DatasetImage], tags=["dataset"])
def dataset_images(ctx: WebContext = Depends(get_context)) -> list[DatasetImage]:
    """The dataset's images with a few of their expressions (for the grounding page's picker)."""
    dataset, _ = ctx.require_dataset()
    texts = dataset.expressions_by_image()
    return [
        DatasetImage(
            id=i,
            width=dataset.sizes[i][0],
            height=dataset.sizes[i][1],
            url=f"/dataset/images/{i}",
            expressions=texts.get(i, []),
        )
        for i in sorted(dataset.images)
    ]


@router.get("/dataset/images/{image_id}", responses={404: {"model": ErrorResponse}}, tags=["dataset"])
def dataset_image_file(image_id: str, ctx: WebContext = Depends(get_context)) -> Response:
    """An image of the dataset by id. Only images that the annotations name are served, from JPEGImages/;
    formats a browser cannot show (e.g. TIFF) are sent as PNG."""
    dataset, _ = ctx.require_dataset()
    path = dataset.image_path(image_id)
    if path is None:
        raise HTTPException(404, f"no image {image_id!r} in the dataset")
    media = BROWSER_IMAGE_TYPES.get(path.suffix.lower())
    if media is not None:
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
    try:
        rgb = decode_image_rgb(path.read_bytes(), str(path))
    except ImageReadError:
        raise HTTPException(404, f"image {image_id!r} cannot be read") from None
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise HTTPException(500, "could not convert the image")
    return Response(buf.tobytes(), media_type="image/png")
