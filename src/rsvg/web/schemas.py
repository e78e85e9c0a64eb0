"""Request and response bodies of the JSON API (they also make the generated OpenAPI page)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from rsvg.models.stages import step_titles

Box = list[float]

#: the steps after the first look that can change an answer, by key (what the model's stages say of themselves)
STEP_TITLES = step_titles()


class Timing(BaseModel):
    """Milliseconds spent on each step of one request."""

    decode_ms: float = Field(description="Reading and decoding the image.")
    inference_ms: float = Field(description="The model's forward pass (letterbox, text, network, box).")
    total_ms: float = Field(description="The whole request, queueing for the model included.")


class GroundResponse(BaseModel):
    """The predicted box of a query on an image."""

    query: str
    box: Box = Field(
        description="(x1, y1, x2, y2) in original image pixels, clipped to the image.",
        examples=[[112.5, 80.0, 260.25, 171.0]],
    )
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    score: float | None = Field(
        None,
        description="The model's own confidence in the answer, 0..1 (the chosen cell's softmax probability, or the "
        "peak of the [REG] token's attention), with or without the heatmap. A high score does not make the box right "
        "when ``warnings`` names the query.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Sentences on why the box may mean little, empty when nothing is wrong: a query whose words are "
        "mostly unknown to the text encoder (another script or language, letters typed at random: the sentence "
        "`rsvg ground` prints), a 16-bit image read as 8 bits, transparent pixels read with their stored colour.",
    )
    timing: Timing
    attention_png: str | None = Field(
        None,
        description="Where the model looks (cell scores or [REG] attention) as a colour PNG data URL, if asked for; "
        "its alpha channel is the map's value (clear where the model does not look, opaque at the peak).",
    )
    steps: dict[str, bool] = Field(
        default_factory=dict,
        description="For models with steps after the first look: per step ("
        + ", ".join(f"{key}: {title}" for key, title in STEP_TITLES.items())
        + ") whether it changed the answer. Empty for the paper's model.",
        examples=[{key: k != 1 for k, key in enumerate(STEP_TITLES)}],
    )
    first_look_box: Box | None = Field(
        None, description="The first look's box (the cell heatmap's), in original pixels; null without later steps."
    )
    provenance: str = Field("", description="One sentence on which steps moved the box and from where.")


class ErrorResponse(BaseModel):
    """Every error answer: a sentence saying what was wrong."""

    detail: str


class Status(BaseModel):
    """What this server has loaded, and its limits."""

    model_loaded: bool
    checkpoint: str | None
    dataset: str | None
    objects: int
    images: int
    max_upload_bytes: int
    max_image_pixels: int
    max_image_side: int
    max_tokens: int | None = Field(
        None, description="The most tokens the model reads (special tokens included); null without a model."
    )
    max_query_chars: int = Field(description="The most characters a query may have.")


class TokensIn(BaseModel):
    """A query to count, as the user types it."""

    query: str = Field(description="The referring expression (any length: the answer says when it is too long).")


class TokenCount(BaseModel):
    """How a query measures against the limits of ``POST /api/ground``, counted by the model's own tokenizer."""

    tokens: int = Field(description="Tokens the query takes in the model's input (special tokens included).")
    max_tokens: int = Field(description="The most tokens the model reads.")
    chars: int = Field(description="Characters in the query.")
    max_query_chars: int = Field(description="The most characters a query may have.")
    fits: bool = Field(description="Whether POST /api/ground takes the query (not empty, within both limits).")
    detail: str | None = Field(
        None, description="Why not: the sentence POST /api/ground answers with (422) for this query."
    )
    warnings: list[str] = Field(
        default_factory=list, description="What POST /api/ground would warn about this query (unknown words)."
    )


class DatasetImage(BaseModel):
    """One image of the loaded dataset, for the grounding page's picker."""

    id: str
    width: int
    height: int
    url: str
    expressions: list[str]


class DecisionIn(BaseModel):
    """A review decision about one object (by its global index)."""

    index: int = Field(ge=0, description="Global object index (as the split files count).")
    annotator: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Who decides, on a server without accounts. With accounts the logged-in user decides, and a "
        "different name here is refused.",
    )
    action: Literal["accept", "reject", "edit", "skip"]
    description: str | None = Field(
        None, max_length=1000, description="edit: the corrected expression (default: the current one)."
    )
    box: Box | None = Field(None, description="edit: the corrected (x1, y1, x2, y2) in pixels (default: current).")
    request_id: str | None = Field(
        None, min_length=1, max_length=100, description="Client-chosen id: a retried request is recorded once."
    )

    @field_validator("annotator")
    @classmethod
    def _clean_annotator(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = " ".join(v.split())
        if not v or not v.isprintable():
            raise ValueError("the annotator name must be printable text")
        return v

    @field_validator("box")
    @classmethod
    def _check_box(cls, v: Box | None) -> Box | None:
        if v is None:
            return v
        if len(v) != 4 or not all(math.isfinite(x) for x in v):
            raise ValueError("a box is 4 finite numbers x1, y1, x2, y2")
        if not (v[0] < v[2] and v[1] < v[3]):
            raise ValueError("a box needs x1 < x2 and y1 < y2")
        return v


class UndoIn(BaseModel):
    """Undo a decision: a given one, or the annotator's latest one still in force."""

    annotator: str | None = Field(
        None, min_length=1, max_length=64, description="Whose latest decision, on a server without accounts."
    )
    decision_id: int | None = Field(None, ge=1)


class DecisionOut(BaseModel):
    """A recorded decision."""

    id: int
    index: int
    annotator: str
    action: str
    description: str | None
    box: Box | None
    created_at: str
    undone_at: str | None
    undone_by: str | None


class Verdict(BaseModel):
    """One annotator's verdict on an object: the fold of their own decisions in force there."""

    annotator: str
    status: Literal["accepted", "rejected", "edited"]


class ReviewItem(BaseModel):
    """One object under review: the original, the current (corrected) version and its history."""

    index: int
    total: int
    image_id: str
    image_url: str
    width: int
    height: int
    category: str
    split: str | None
    original_description: str
    original_box: Box
    description: str
    box: Box
    status: Literal["unreviewed", "accepted", "rejected", "edited"] = Field(
        description="The latest decision in force (it gives the text and box the export writes)."
    )
    verdicts: list[Verdict] = Field(default_factory=list, description="Each annotator's own verdict.")
    disputed: bool = Field(False, description="Annotators gave different verdicts.")
    history: list[DecisionOut]


class DecisionResult(BaseModel):
    """The decision as stored, whether it was new, and the object's state after it."""

    decision: DecisionOut
    created: bool
    item: ReviewItem


class UndoResult(BaseModel):
    """The undone decision (``null`` when there was nothing to undo) and its object's state."""

    undone: DecisionOut | None
    item: ReviewItem | None


class NextResult(BaseModel):
    """The next (or previous) object matching the filters, or ``null`` when none does."""

    index: int | None


class PairAgreement(BaseModel):
    """Agreement of two annotators over the expressions both reviewed."""

    annotators: list[str]
    expressions: int
    same_verdict: float = Field(description="Share of those expressions with the same verdict (0..1).")
    both_edited: int
    mean_edit_iou: float | None = Field(None, description="Mean IoU of their boxes where both edited.")


class AnnotatorAgreement(BaseModel):
    """How often one annotator's verdicts match the other annotators' on shared expressions."""

    annotator: str
    expressions: int = Field(description="Shared expressions this annotator judged.")
    pairs: int = Field(description="Pairs of this annotator with another over those expressions.")
    same_verdict: float = Field(description="Share of those pairs with the same verdict (0..1).")


class Agreement(BaseModel):
    """Inter-annotator agreement over the expressions two or more annotators reviewed (decisions in force)."""

    expressions: int = Field(description="Expressions with verdicts of two or more annotators.")
    pairs: int = Field(description="Annotator pairs over those expressions (an expression of 3 annotators: 3).")
    same_verdict: float | None = Field(None, description="Share of pairs with the same verdict (0..1).")
    edited_pairs: int = Field(description="Pairs where both annotators edited the box.")
    mean_edit_iou: float | None = Field(None, description="Mean IoU of the two boxes over those pairs.")
    by_pair: list[PairAgreement] = Field(default_factory=list)
    by_annotator: list[AnnotatorAgreement] = Field(default_factory=list)


class Progress(BaseModel):
    """How far the review is, over the objects the filters' category selects."""

    total: int
    done: int
    accepted: int
    rejected: int
    edited: int
    unreviewed: int
    disputed: int = Field(description="Objects whose annotators gave different verdicts.")
    categories: list[str]
    annotators: dict[str, int]
    agreement: Agreement | None = Field(
        None, description="Inter-annotator agreement (for admins, or for everyone on a server without accounts)."
    )
