"""The HTML pages (plain files, no template engine, no build step) and the self-hosted API docs page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Query
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


#: what the login page says, by where the user goes after it: (heading, lead, the button's words)
LOGIN_TEXTS = {
    "ground": (
        "Log in to ground queries",
        "This server asks for a login before its grounding page (find the object a sentence describes in an "
        "aerial image): log in with the account your admin made for you (<code>rsvg users add</code>).",
        "Log in and ground",
    ),
    "review": (
        "Log in to review",
        "This server reviews a dataset with a team: log in with the account your admin made for you "
        "(<code>rsvg users add</code>).",
        "Log in and review",
    ),
    "docs": (
        "Log in to the API",
        "This server asks for a login before its API and its documentation: log in with the account your admin "
        "made for you (<code>rsvg users add</code>).",
        "Log in",
    ),
}


def login_target(next_url: str | None) -> str:
    """Where the login page leads: ``next`` when it is a page of this server, else the review page (what
    login.js follows; a "//host" or "/\\host" target could lead elsewhere)."""
    if not next_url or not next_url.startswith("/") or next_url.startswith(("//", "/\\")):
        return "/review"
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc:
        return "/review"
    return next_url


def login_purpose(next_url: str | None) -> str:
    """The key of :data:`LOGIN_TEXTS` for where the user was going: the review tool, the API and its docs, or the
    grounding page (``/`` and anything else)."""
    path = urlsplit(login_target(next_url)).path
    if path == "/review" or path.startswith("/review/"):
        return "review"
    if path.startswith(("/docs", "/api", "/openapi")):
        return "docs"
    return "ground"


@router.get("/login")
def login_page(next_url: Annotated[str | None, Query(alias="next")] = None) -> HTMLResponse:
    """The login form (only servers with accounts ask for it). Its heading and text follow where the user was
    going (``next``, set by the redirect that sent them here): the grounding page, the review tool or the API."""
    heading, lead, button = LOGIN_TEXTS[login_purpose(next_url)]
    text = (TEMPLATES / "login.html").read_text(encoding="utf-8")
    for key, value in {"heading": html.escape(heading), "lead": lead, "button": html.escape(button)}.items():
        text = text.replace("{{" + key + "}}", value)
    return HTMLResponse(text, headers=PAGE_HEADERS)


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
