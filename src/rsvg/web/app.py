"""The web app: grounding page and JSON API, and the annotators' review tool (``rsvg serve``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from rsvg import __version__
from rsvg.inference import Grounder
from rsvg.web import auth, ground_api, pages, review_api
from rsvg.web.accounts import AccountStore
from rsvg.web.context import WebContext
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.guards import GuardMiddleware, Limits
from rsvg.web.review_db import ReviewStore

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]

DESCRIPTION = """Visual grounding on remote sensing images (MGVLF, Zhan et al., IEEE TGRS 2023).

* `POST /api/ground`: the box of a referring expression on an image, in original pixels.
* `/api/review/...`: the annotators' review of a dataset (paper Sec. III, step 4), stored in SQLite.
* `/api/auth/...`: login. Once the review database has accounts (`rsvg users add`), every page and API needs a
  session cookie, and every POST the session's `X-CSRF-Token` header (from `GET /api/auth/me`).

Pages: [grounding](/) · [review](/review) · [login](/login)."""


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and what, without echoing the input (it may hold NaN or megabytes of bytes)."""
    detail = [{"type": e.get("type", ""), "loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(
    checkpoint: Path | None = None,
    dataset: Path | None = None,
    *,
    db_path: Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    limits: Limits | None = None,
    allowed_hosts: list[str] | None = None,
    grounder: Grounder | None = None,
) -> FastAPI:
    """Build the app. The model is loaded here, once per process (or passed in as ``grounder``); the
    dataset is read and its review database (``db_path``, default ``ROOT/review.sqlite3``) opened. The accounts
    live in that database (``db_path`` alone, without a dataset, holds just accounts); with at least one, every
    page and API asks for a login (:mod:`rsvg.web.auth`).

    ``allowed_hosts`` limits the Host header (against DNS rebinding when serving on loopback); ``None``
    accepts any host. ``device`` is checked before the model is loaded (an unknown name or a missing GPU is a
    :class:`~rsvg.errors.DeviceError` naming ``--device``).
    """
    ctx = WebContext(limits=limits or Limits(), checkpoint=Path(checkpoint) if checkpoint is not None else None)
    if grounder is not None:
        ctx.grounder = grounder
    elif checkpoint is not None:
        ctx.grounder = Grounder.from_checkpoint(
            checkpoint, device=device, precision=precision, device_option="--device"
        )
    if dataset is not None:
        ctx.dataset = ReviewDataset(dataset)
        ctx.store = ReviewStore(
            Path(db_path) if db_path is not None else default_db_path(dataset),
            len(ctx.dataset),
            ctx.dataset.fingerprint,
        )
    accounts_path = Path(db_path) if db_path is not None else None
    if accounts_path is None and dataset is not None:
        accounts_path = default_db_path(dataset)
    if accounts_path is not None:
        ctx.accounts = AccountStore(accounts_path)
    app = FastAPI(
        title="rsvg",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by pages.mount_assets from local files (the default page loads a CDN)
        redoc_url=None,
    )
    app.state.web = ctx
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.include_router(auth.router)
    app.include_router(ground_api.router)
    app.include_router(review_api.router)
    app.include_router(pages.router)
    pages.mount_assets(app)
    lim = ctx.limits
    app.add_middleware(
        GuardMiddleware,
        limit_for=lambda path: lim.max_upload_bytes if path == "/api/ground" else lim.max_json_bytes,
    )
    if ctx.accounts is not None:  # outside the body guard: a request without a session is refused unread
        app.add_middleware(auth.AuthMiddleware, accounts=ctx.accounts)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    return app
