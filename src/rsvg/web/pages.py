"""The HTML pages (plain files, no template engine, no build step) and the self-hosted API docs page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# Everything comes from this server: no CDN, no inline script (the pages load their JS files).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((TEMPLATES / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS)


@router.get("/")
def grounding_page() -> HTMLResponse:
    """Upload an image (or pick one of the dataset's), type a query, see the box and the attention map."""
    return _page("ground.html")


@router.get("/review")
def review_page() -> HTMLResponse:
    """The annotators' review tool."""
    return _page("review.html")


@router.get("/login")
def login_page() -> HTMLResponse:
    """The login form (only servers with accounts ask for it)."""
    return _page("login.html")


def mount_assets(app: FastAPI) -> None:
    """Serve static/ and the API docs page, whose Swagger UI files come from an installed package."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the docs page then links to the raw schema
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(
                "<!doctype html><title>rsvg API</title><p>Install <code>swagger-ui-bundle-v2</code> for the "
                'interactive page; the schema is at <a href="/openapi.json">/openapi.json</a>.</p>'
            )
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
