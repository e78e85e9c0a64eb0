"""Login for the web app: the login page and API, and the middleware that asks for a session.

With no account in the review database, nothing changes: the server is a one-person tool on loopback (``rsvg
serve`` refuses any other address then) and each decision names its annotator in the request. Once an account
exists (``rsvg users add``), every page, API and dataset image needs a session, except the login page, its
script and style, and ``/api/auth/*``:

* pages answer an unauthenticated browser with a redirect to ``/login``, APIs with 401;
* every state-changing request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in the
  ``X-CSRF-Token`` header (403 otherwise), on top of the same-origin check of :mod:`rsvg.web.guards`;
* the decisions record the logged-in user, never a name sent in the request.

The session cookie is HttpOnly, SameSite=Strict, expires with the session, and is marked Secure when the request
came over HTTPS (directly, or through a reverse proxy that uvicorn trusts for X-Forwarded-Proto).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from rsvg.web.accounts import AccountError, AccountStore, LoginSession, LoginThrottled, User
from rsvg.web.context import WebContext, get_context
from rsvg.web.guards import SAFE_METHODS

COOKIE = "rsvg_session"
CSRF_HEADER = "x-csrf-token"
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/api/auth/login",
        "/api/auth/me",
        "/static/login.js",
        "/static/api.js",
        "/static/style.css",
        "/static/favicon.svg",
    }
)

router = APIRouter(prefix="/api/auth", tags=["accounts"])


class LoginIn(BaseModel):
    """A login attempt."""

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    """Who this browser is logged in as, and the CSRF token its writes must send."""

    login_required: bool = Field(description="Whether this server has accounts (then every page needs a login).")
    name: str | None = None
    role: str | None = None
    csrf: str | None = Field(None, description="Send it as the X-CSRF-Token header on every POST.")
    expires_at: float | None = Field(None, description="Unix time at which the session ends.")


def client_address(conn: HTTPConnection) -> str:
    """The client's address as uvicorn reports it (the proxy's view when it is trusted for X-Forwarded-For)."""
    return conn.client.host if conn.client is not None else ""


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class AuthMiddleware:
    """Asks for a session on every path but the public ones once accounts exist (see the module docstring).

    The session, if any, is put in ``scope["state"]["login"]`` for the endpoints (:func:`current_user`).
    """

    def __init__(self, app: ASGIApp, accounts: AccountStore) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        required, login = self.accounts.request_login(conn.cookies.get(COOKIE))
        if not required:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["login"] = login
        path = scope["path"]
        if path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if login is None:
            if scope["method"] in SAFE_METHODS and not path.startswith(("/api/", "/dataset/", "/openapi")):
                target = path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            else:
                response = _json(401, "log in first (POST /api/auth/login, or the page /login)")
            await response(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            sent = conn.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), login.csrf.encode()):
                await _json(403, "missing or wrong X-CSRF-Token header (GET /api/auth/me gives it)")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def current_user(request: Request) -> User | None:
    """FastAPI dependency: the logged-in user, or ``None`` when the server has no accounts."""
    login: LoginSession | None = request.scope.get("state", {}).get("login")
    return login.user if login is not None else None


def _accounts(ctx: WebContext) -> AccountStore:
    if ctx.accounts is None:
        raise HTTPException(404, "this server has no accounts: start it with --dataset or --db")
    return ctx.accounts


@router.post("/login", response_model=Me, responses={401: {}, 429: {}})
def login(body: LoginIn, request: Request, ctx: Annotated[WebContext, Depends(get_context)]) -> JSONResponse:
    """Check the name and password and set the session cookie. Repeated failures for one name or one client
    address are refused for a while (429 with Retry-After)."""
    accounts = _accounts(ctx)
    try:
        session = accounts.login(body.name, body.password, client_address(request))
    except LoginThrottled as exc:
        return _json(429, str(exc), {"Retry-After": str(exc.retry_after)})
    except AccountError as exc:
        return _json(401, str(exc))
    me = Me(
        login_required=True,
        name=session.user.name,
        role=session.user.role,
        csrf=session.csrf,
        expires_at=session.expires_at,
    )
    response = JSONResponse(json.loads(me.model_dump_json()))
    response.set_cookie(
        COOKIE,
        session.token or "",
        max_age=max(1, int(session.expires_at - time.time())),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", response_model=Me)
def logout(request: Request, ctx: Annotated[WebContext, Depends(get_context)]) -> JSONResponse:
    """End this browser's session and clear its cookie."""
    if ctx.accounts is not None:
        ctx.accounts.logout(request.cookies.get(COOKIE))
    response = JSONResponse(Me(login_required=ctx.accounts is not None and ctx.accounts.has_users()).model_dump())
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=Me)
def me(request: Request, ctx: Annotated[WebContext, Depends(get_context)]) -> Me:
    """Whether the server asks for logins, and if this browser is logged in, as whom (with its CSRF token)."""
    required, session = ctx.accounts.request_login(request.cookies.get(COOKIE)) if ctx.accounts else (False, None)
    if not required:
        return Me(login_required=False)
    if session is None:
        return Me(login_required=True)
    return Me(
        login_required=True,
        name=session.user.name,
        role=session.user.role,
        csrf=session.csrf,
        expires_at=session.expires_at,
    )
