"""``POST /api/ground`` and the dataset's images: what the grounding page uses."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from rsvg.data.image_io import ImageReadError, check_image_side, decode_image_rgb, picture_notes
from rsvg.data.tokenizer import QueryTooLongError
from rsvg.geo.upload import SceneUploadError, decode_scene_upload
from rsvg.viz import heat_colors
from rsvg.web.context import WebContext, get_context
from rsvg.web.guards import GuardError, check_image_header
from rsvg.web.schemas import DatasetImage, ErrorResponse, GroundResponse, Status, Timing, TokenCount, TokensIn

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
MAX_QUERY_CHARS = 2000  # far above any model's token limit: a guard against megabytes of text, not a query's limit

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 403, 404, 413, 415, 422, 429, 503)}


def attention_rgba(attention: np.ndarray) -> np.ndarray:
    """An H×W map in 0..1 as a JET-coloured BGRA image whose alpha is the value itself (0 where the map is 0,
    opaque at its peak), at most ``ATTENTION_SIDE`` pixels a side: laid over the photo it tints only where the
    model looks, and leaves the rest of the picture as it is."""
    h, w = attention.shape
    scale = min(1.0, ATTENTION_SIDE / max(h, w))
    small = cv2.resize(
        attention.astype(np.float32), (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    heat, values = heat_colors(small)
    return np.dstack([heat, values])


def attention_data_url(attention: np.ndarray) -> str:
    """The map of :func:`attention_rgba` as a PNG data URL (with its alpha channel)."""
    ok, buf = cv2.imencode(".png", attention_rgba(attention))
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
            # the score always, heatmap or not (the [REG] head reads it from its attention, which predict computes
            # only with the maps or need_score)
            result = grounder.predict(rgb, query, return_attention=attention, need_score=True)
        except QueryTooLongError as exc:
            raise HTTPException(422, str(exc)) from None
        except ImageReadError as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        t2 = time.perf_counter()
        # under the lock too: a Hugging Face fast tokenizer must not be used by two threads at once
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


def query_length_problem(query: str) -> str | None:
    """The sentence refusing a query over :data:`MAX_QUERY_CHARS` characters, or ``None``."""
    if len(query) <= MAX_QUERY_CHARS:
        return None
    return f"the query has {len(query)} characters, more than the {MAX_QUERY_CHARS} this server takes"


def _count(ctx: WebContext, query: str) -> TokenCount:
    """Measure a query as ``POST /api/ground`` does (runs in a worker thread, under the model lock: the model's
    tokenizer is the one grounding uses, and a Hugging Face fast tokenizer must not be used by two threads)."""
    grounder = ctx.require_grounder()
    detail = query_length_problem(query)
    with ctx.model_lock:
        tokens = grounder.query_tokens(query)
        if detail is None:
            try:
                grounder.check_query(query)  # the check predict makes, with its sentence
            except (QueryTooLongError, ValueError) as exc:
                detail = str(exc)
        warning = grounder.query_warning(query) if query.strip() else None
    return TokenCount(
        tokens=tokens,
        max_tokens=grounder.max_tokens,
        chars=len(query),
        max_query_chars=MAX_QUERY_CHARS,
        fits=detail is None,
        detail=detail,
        warnings=[warning] if warning else [],
    )


@router.post("/api/tokens", response_model=TokenCount, responses={503: {"model": ErrorResponse}}, tags=["grounding"])
async def count_tokens(body: TokensIn, ctx: WebContext = Depends(get_context)) -> TokenCount:
    """Count a query's tokens with the model's own tokenizer, as ``POST /api/ground`` counts them, and say whether
    it would be taken (``fits``; ``detail`` is the sentence it would be refused with) and what it would be warned
    about. The grounding page calls it as the user types. It waits while the model grounds another request."""
    ctx.require_grounder()
    return await run_in_threadpool(_count, ctx, body.query)


@router.post("/api/ground", response_model=GroundResponse, responses=_ERRORS, tags=["grounding"])
async def ground(
    query: Annotated[str, Form(description='The referring expression, e.g. "the red vehicle".')],
    image: Annotated[UploadFile | None, File(description="The image (JPEG, PNG, TIFF, BMP, WebP).")] = None,
    dataset_image: Annotated[
        str | None, Form(max_length=200, description="Instead of an upload: the id of an image of the dataset.")
    ] = None,
    attention: Annotated[bool, Form(description="Also return the attention map as a PNG data URL.")] = False,
    ctx: WebContext = Depends(get_context),
) -> GroundResponse:
    """Ground a query on an image: the box in original pixels, the image size and the time taken.

    Send ``multipart/form-data`` with ``image`` (a file) or ``dataset_image`` (an image id of the loaded
    dataset), and ``query``. The box is clipped to the image; ``score`` is the model's own confidence in it;
    ``warnings`` says when the answer means little (a query mostly unknown to the text encoder, as ``rsvg
    ground`` warns) or the image was changed to be read (16-bit, transparent pixels). ``POST /api/tokens``
    measures a query against the limits beforehand. Errors, each with a sentence in ``detail``: 400 (no image or
    both), 404 (unknown dataset image), 413 (upload or image too large), 415 (not an image), 422 (empty query,
    one over the model's tokens or 2000 characters, image under 8 pixels a side), 429 (the server already holds
    its limit of grounding requests: try again shortly), 503 (no model loaded).
    """
    started = time.perf_counter()
    ctx.require_grounder()
    problem = query_length_problem(query)
    if problem is not None:
        raise HTTPException(422, problem)
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
        max_tokens=getattr(ctx.grounder, "max_tokens", None),  # stand-in models of tests may lack it
        max_query_chars=MAX_QUERY_CHARS,
    )


def image_list(ctx: WebContext) -> tuple[bytes, str]:
    """The dataset's image list as JSON bytes and its ETag (a hash of those bytes), built once per app: the dataset
    is read when the server starts and never changes while it runs."""
    if ctx.image_list is None:
        dataset, _ = ctx.require_dataset()
        texts = dataset.expressions_by_image()
        images = [
            DatasetImage(
                id=i,
                width=dataset.sizes[i][0],
                height=dataset.sizes[i][1],
                url=f"/dataset/images/{i}",
                expressions=texts.get(i, []),
            ).model_dump()
            for i in sorted(dataset.images)
        ]
        body = json.dumps(images, ensure_ascii=False, separators=(",", ":")).encode()
        ctx.image_list = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return ctx.image_list


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak or strong, or ``*``)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/api/dataset/images",
    response_model=list[DatasetImage],
    responses={304: {"description": "The list the browser holds (If-None-Match) is current."}},
    tags=["dataset"],
)
def dataset_images(
    ctx: WebContext = Depends(get_context),
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The dataset's images with a few of their expressions (for the grounding page's picker).

    The answer has an ETag and ``Cache-Control: private, no-cache``: a browser keeps the list and asks again
    with If-None-Match, and gets 304 without a body while the server runs the same dataset (DIOR-RSVG's list is
    about 750 KB). It revalidates each time instead of trusting an age, since a restart on another dataset
    changes the list behind the same address."""
    body, etag = image_list(ctx)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


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
