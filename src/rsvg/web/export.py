"""``rsvg review-export``: the dataset as the annotators corrected it.

Rejected objects are removed, edits (text and box) applied, everything else kept as it was. An object whose
annotators disagree (disputed) takes its latest decision; the summary lists the disputed objects, so they can be
settled in the review tool before the export that counts. Removing objects shifts the global indices of the
objects after them, so every split file is rewritten through the old → new index map: each kept expression stays
in its split, in the same order. Images left with no object are dropped.
The result is written atomically (:class:`~rsvg.data.dior_rsvg.GroundingDatasetWriter`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rsvg.data.dior_rsvg import GroundingDatasetWriter, GroundingObject, samples_by_image
from rsvg.data.image_io import image_size
from rsvg.data.records import DatasetError
from rsvg.output_paths import check_output_folder, resolved
from rsvg.web.agreement import AgreementReport, agreement_of, verdicts
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.review_db import ItemState, ReviewStore, is_disputed


@dataclass
class ExportSummary:
    """What an export kept, removed and changed."""

    out: Path
    objects_in: int
    objects_out: int
    images_out: int
    statuses: dict[str, int] = field(default_factory=dict)  # accepted / rejected / edited / unreviewed
    splits: dict[str, int] = field(default_factory=dict)
    index_map: dict[int, int] = field(default_factory=dict)  # old global index -> new one (kept objects)
    disputed: list[int] = field(default_factory=list)  # original indices whose annotators disagree
    agreement: AgreementReport = field(default_factory=AgreementReport)

    def to_dict(self) -> dict:
        return {
            "out": str(self.out),
            "objects_in": self.objects_in,
            "objects_out": self.objects_out,
            "images_out": self.images_out,
            "statuses": self.statuses,
            "splits": self.splits,
            "disputed": self.disputed,
            "agreement": self.agreement.to_dict(),
        }


def _image_size(dataset: ReviewDataset, image_id: str) -> tuple[int, int]:
    """The image's size from its XML, or from the file when the XML has no usable ``<size>``
    (:class:`~rsvg.errors.ImageReadError` naming it when it cannot be read)."""
    width, height = dataset.sizes[image_id]
    if width > 0 and height > 0:
        return width, height
    return image_size(dataset.images[image_id])


def export_reviewed(
    root: Path,
    out: Path,
    db_path: Path | None = None,
    drop_unreviewed: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Write the corrected copy of the dataset at ``root`` to ``out`` (see the module docstring).

    ``out`` may not be ``root`` (:class:`DatasetError`), hold it or the review database, lie inside ``root``, be a
    file or the current folder (:class:`~rsvg.errors.OutputPathError`); an existing ``out`` needs ``overwrite``
    and stays complete until the new folder replaces it."""
    db_path = Path(db_path) if db_path is not None else default_db_path(root)
    if resolved(out) == resolved(root):
        raise DatasetError(
            f"the export must go to a new folder, not over the reviewed dataset {root} (its review database and "
            "every decision would go with it)"
        )
    if Path(out).exists() and not overwrite:
        raise DatasetError(f"output folder already exists: {out} (choose another or pass overwrite)")
    check_output_folder(out, "out", inputs={"root": root, "db_path": db_path}, overwrite=overwrite)
    dataset = ReviewDataset(root)
    if db_path.is_dir():
        raise DatasetError(f"the review database {db_path} is a folder; give the SQLite file (--db)")
    if not db_path.is_file():
        raise DatasetError(f"no review database at {db_path} (review the dataset with `rsvg serve --dataset` first)")
    store = ReviewStore(db_path, len(dataset), dataset.fingerprint)
    history = store.decisions()
    states = store.recomputed_states(history)
    per_item = verdicts(history)  # each annotator's verdict per object: the disputes and the agreement
    statuses = Counter(states.get(s.index, ItemState()).status for s in dataset.samples)
    removed = {i for i, st in states.items() if st.status == "rejected"}
    if drop_unreviewed:
        removed |= {s.index for s in dataset.samples if s.index not in states}
    index_map: dict[int, int] = {}
    with GroundingDatasetWriter(out, overwrite=overwrite) as writer:
        for image_id, samples in sorted(samples_by_image(dataset.samples).items(), key=lambda kv: f"{kv[0]}.xml"):
            objects = []
            for s in samples:
                if s.index in removed:
                    continue
                state = states.get(s.index, ItemState())
                objects.append(
                    GroundingObject(
                        category=s.category,
                        box=state.box if state.box is not None else s.box,
                        description=state.description if state.description is not None else s.description,
                        extra={"review": state.status},
                    )
                )
                index_map[s.index] = len(index_map)
            if not objects:
                continue
            if image_id not in dataset.images or not dataset.images[image_id].is_file():
                raise DatasetError(f"image of {image_id} not found under {dataset.root / 'JPEGImages'}")
            width, height = _image_size(dataset, image_id)
            writer.add_image(image_id, dataset.images[image_id], width, height, objects)
        if len(writer.global_order()) != len(index_map):  # the writer numbers objects as we did
            raise DatasetError("internal error: exported object count does not match the index map")
        splits = {name: [index_map[i] for i in idx if i in index_map] for name, idx in dataset.splits.items()}
        written = writer.commit(splits)
    return ExportSummary(
        out=written,
        objects_in=len(dataset),
        objects_out=len(index_map),
        images_out=len({s.image_id for s in dataset.samples if s.index in index_map}),
        statuses={k: statuses.get(k, 0) for k in ("accepted", "edited", "rejected", "unreviewed")},
        splits={k: len(v) for k, v in splits.items()},
        index_map=index_map,
        disputed=sorted(i for i, v in per_item.items() if is_disputed(v)),
        agreement=agreement_of(per_item),
    )
