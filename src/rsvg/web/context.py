"""What one server holds: the model (loaded once), the dataset, the review store and the limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from rsvg.inference import Grounder
from rsvg.web.accounts import AccountStore
from rsvg.web.dataset_view import ReviewDataset
from rsvg.web.guards import Limits
from rsvg.web.review_db import ReviewStore


@dataclass
class WebContext:
    """Shared by every request of one app; the model lock keeps one forward pass at a time, and the grounding
    slots cap how many grounding requests are in the server at once (running or waiting for the model)."""

    grounder: Grounder | None = None
    checkpoint: Path | None = None
    dataset: ReviewDataset | None = None
    store: ReviewStore | None = None
    limits: Limits = field(default_factory=Limits)
    accounts: AccountStore | None = None
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    ground_slots: threading.BoundedSemaphore = field(init=False)
    #: the dataset's image list as JSON and its ETag, built on first request (:func:`.ground_api.image_list`)
    image_list: tuple[bytes, str] | None = None

    def __post_init__(self) -> None:
        self.ground_slots = threading.BoundedSemaphore(self.limits.max_ground_requests)

    def require_dataset(self) -> tuple[ReviewDataset, ReviewStore]:
        """The dataset and its review store, or a 404 that says how to load one."""
        if self.dataset is None or self.store is None:
            raise HTTPException(404, "no dataset loaded: start the server with `rsvg serve --dataset ROOT`")
        return self.dataset, self.store

    def require_grounder(self) -> Grounder:
        """The model, or a 503 that says how to load one."""
        if self.grounder is None:
            raise HTTPException(503, "no model loaded: start the server with `rsvg serve --checkpoint RUN/best`")
        return self.grounder


def get_context(request: Request) -> WebContext:
    """FastAPI dependency: the app's :class:`WebContext`."""
    return request.app.state.web
