"""Web pages and JSON API: grounding on uploaded images, and the annotators' review tool on SQLite.

Needs the ``web`` extra (FastAPI, uvicorn, python-multipart, swagger-ui-bundle-v2). Start it with ``rsvg serve``
or ``uvicorn`` on :func:`rsvg.web.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See :func:`rsvg.web.app.create_app` (imported lazily: FastAPI is an optional dependency)."""
    from rsvg.web.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
