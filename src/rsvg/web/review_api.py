"""The review tool's JSON API: items, filters, progress, decisions and undo.

The endpoints are plain ``def`` functions, so FastAPI runs them in its thread pool: a SQLite write (committed
and synced before the answer goes out) never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from rsvg.web.accounts import User
from rsvg.web.agreement import agreement
from rsvg.web.auth import current_user
from rsvg.web.context import WebContext, get_context
from rsvg.web.dataset_view import ReviewDataset
from rsvg.web.review_db import (
    Decision,
    ReviewDBError,
    ReviewPermissionError,
    ReviewStore,
    annotator_verdicts,
    is_disputed,
)
from rsvg.web.schemas import (
    Agreement,
    DecisionIn,
    DecisionOut,
    DecisionResult,
    ErrorResponse,
    NextResult,
    Progress,
    ReviewItem,
    UndoIn,
    UndoResult,
    Verdict,
)

router = APIRouter(prefix="/api/review", tags=["review"], responses={404: {"model": ErrorResponse}})
StatusFilter = Literal["all", "unreviewed", "reviewed", "accepted", "rejected", "edited", "disputed"]


def _decision_out(d: Decision) -> DecisionOut:
    return DecisionOut(**d.to_dict())


def acting_annotator(user: User | None, named: str | None) -> str:
    """Who a decision or undo is recorded under: the logged-in user on a server with accounts (a different name
    in the request is refused), else the name the request gives (which it must then give)."""
    if user is not None:
        if named is not None and named != user.name:
            raise HTTPException(403, f"you are logged in as {user.name!r}: decisions are recorded under that name")
        return user.name
    if named is None:
        raise HTTPException(422, "this server has no accounts: name the annotator in the request ('annotator')")
    return named


def sees_everything(user: User | None) -> bool:
    """Admins, and everyone on a server without accounts, see the agreement and the whole history."""
    return user is None or user.is_admin


def build_item(dataset: ReviewDataset, store: ReviewStore, index: int) -> ReviewItem:
    """An object with its current (corrected) text and box and its whole decision history."""
    if not 0 <= index < len(dataset):
        raise HTTPException(404, f"no object {index}: the dataset has objects 0..{len(dataset) - 1}")
    s = dataset.samples[index]
    state = store.state(index)
    history = store.history(index)
    verdicts = annotator_verdicts(history)
    return ReviewItem(
        index=index,
        total=len(dataset),
        image_id=s.image_id,
        image_url=f"/dataset/images/{s.image_id}",
        width=s.width,
        height=s.height,
        category=s.category,
        split=dataset.split_of.get(index),
        original_description=s.description,
        original_box=list(s.box),
        description=state.description if state.description is not None else s.description,
        box=list(state.box) if state.box is not None else list(s.box),
        status=state.status,  # type: ignore[arg-type]
        verdicts=[Verdict(annotator=name, status=v.status) for name, v in verdicts.items()],  # type: ignore[arg-type]
        disputed=is_disputed(verdicts),
        history=[_decision_out(d) for d in history],
    )


def _matcher(dataset: ReviewDataset, store: ReviewStore, status: str, category: str | None) -> Callable:
    disputed = store.disputed() if status == "disputed" else set()
    statuses = store.statuses() if status not in ("all", "disputed") else {}

    def match(i: int) -> bool:
        if category and dataset.samples[i].category != category:
            return False
        if status == "all":
            return True
        if status == "disputed":
            return i in disputed
        st = statuses.get(i, "unreviewed")
        if status == "reviewed":
            return st != "unreviewed"
        return st == status

    return match


@router.get("/item/{index}", response_model=ReviewItem)
def get_item(index: int, ctx: WebContext = Depends(get_context)) -> ReviewItem:
    """One object: image, category, split, original and current expression and box, status and history."""
    dataset, store = ctx.require_dataset()
    return build_item(dataset, store, index)


@router.get("/next", response_model=NextResult)
def next_item(
    after: Annotated[
        int, Query(ge=-1, description="Search from the object after this index (-1: from the start).")
    ] = -1,
    direction: Annotated[Literal["next", "prev"], Query()] = "next",
    status: Annotated[StatusFilter, Query(description="Which objects to visit.")] = "all",
    category: Annotated[str | None, Query(max_length=100, description="Only objects of this class.")] = None,
    wrap: Annotated[bool, Query(description="Continue from the other end when the end is reached.")] = True,
    ctx: WebContext = Depends(get_context),
) -> NextResult:
    """The next (or previous) object after ``after`` that the filters select."""
    dataset, store = ctx.require_dataset()
    n = len(dataset)
    match = _matcher(dataset, store, status, category or None)
    start = min(after, n - 1)
    if direction == "next":
        order = [*range(start + 1, n), *(range(0, start + 1) if wrap else ())]
    else:
        first = start if after >= 0 else n
        order = [*range(first - 1, -1, -1), *(range(n - 1, first - 1, -1) if wrap else ())]
    return NextResult(index=next((i for i in order if match(i)), None))


@router.get("/progress", response_model=Progress)
def progress(
    category: Annotated[str | None, Query(max_length=100, description="Count only this class.")] = None,
    ctx: WebContext = Depends(get_context),
    user: User | None = Depends(current_user),
) -> Progress:
    """Objects reviewed so far (done / total, accepted, rejected, edited, disputed), the classes and the
    annotators; for admins also the inter-annotator agreement."""
    dataset, store = ctx.require_dataset()
    statuses, disputed = store.statuses(), store.disputed()
    counts = dict.fromkeys(("accepted", "rejected", "edited", "unreviewed", "disputed"), 0)
    total = 0
    for s in dataset.samples:
        if category and s.category != category:
            continue
        total += 1
        counts[statuses.get(s.index, "unreviewed")] += 1
        counts["disputed"] += s.index in disputed
    return Progress(
        total=total,
        done=total - counts["unreviewed"],
        categories=dataset.categories,
        annotators=store.annotator_counts(),
        agreement=Agreement(**agreement(store.decisions()).to_dict()) if sees_everything(user) else None,
        **counts,
    )


@router.get("/decisions", response_model=list[DecisionOut], responses={403: {"model": ErrorResponse}})
def decisions(ctx: WebContext = Depends(get_context), user: User | None = Depends(current_user)) -> list[DecisionOut]:
    """The whole decision history, oldest first, undone decisions included (admins only on a server with
    accounts): the review's export as JSON, beside ``rsvg review-export``'s corrected dataset."""
    _, store = ctx.require_dataset()
    if not sees_everything(user):
        raise HTTPException(403, "only an admin can export the review")
    return [_decision_out(d) for d in store.decisions()]


@router.post("/decision", response_model=DecisionResult, responses={422: {"model": ErrorResponse}})
def decide(
    body: DecisionIn, ctx: WebContext = Depends(get_context), user: User | None = Depends(current_user)
) -> DecisionResult:
    """Record a decision (committed before the answer) under the logged-in user. ``edit`` takes the corrected
    ``description`` and/or ``box`` (the other keeps its current value); the box must lie inside the image."""
    dataset, store = ctx.require_dataset()
    annotator = acting_annotator(user, body.annotator)
    if body.index >= len(dataset):
        raise HTTPException(404, f"no object {body.index}: the dataset has objects 0..{len(dataset) - 1}")
    description, box = None, None
    if body.action == "edit":
        current = build_item(dataset, store, body.index)
        description = " ".join((body.description if body.description is not None else current.description).split())
        if not description:
            raise HTTPException(422, "the corrected expression is empty")
        box = body.box if body.box is not None else current.box
        w, h = current.width, current.height
        if w > 0 and h > 0 and not (box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h):
            raise HTTPException(422, f"the box {box} is not inside the {w}x{h} image")
    try:
        decision, created = store.record(
            body.index, annotator, body.action, description, tuple(box) if box else None, body.request_id
        )
    except ReviewDBError as exc:
        raise HTTPException(422, str(exc)) from None
    if not created and (decision.index, decision.action, decision.annotator) != (body.index, body.action, annotator):
        raise HTTPException(409, f"request id {body.request_id!r} was already used for another decision")
    return DecisionResult(
        decision=_decision_out(decision), created=created, item=build_item(dataset, store, body.index)
    )


@router.post("/undo", response_model=UndoResult, responses={403: {"model": ErrorResponse}})
def undo(body: UndoIn, ctx: WebContext = Depends(get_context), user: User | None = Depends(current_user)) -> UndoResult:
    """Undo a decision (by id) or the annotator's latest one still in force; the history keeps it, marked.
    An annotator can undo only their own decisions, an admin anyone's."""
    dataset, store = ctx.require_dataset()
    annotator = acting_annotator(user, " ".join(body.annotator.split()) if body.annotator is not None else None)
    try:
        undone = store.undo(annotator, body.decision_id, own_only=user is not None and not user.is_admin)
    except ReviewPermissionError as exc:
        raise HTTPException(403, str(exc)) from None
    if undone is None:
        return UndoResult(undone=None, item=None)
    return UndoResult(undone=_decision_out(undone), item=build_item(dataset, store, undone.index))
