"""Dataset analysis (paper Sec. III-B): the numbers behind Fig. 3 and Fig. 4, and the figures themselves.

Per expression, the attributes come from its ``<provenance>`` tag when it has one (datasets built here) and
are otherwise read from the text with :func:`rsvg.construct.parsing.parse_expression` (the official
DIOR-RSVG). Without provenance the step that singled the object out is inferred: ``rel+`` when the text has a
relation, ``cat+`` when its category appears once among the image's referred objects, ``att+`` otherwise.

Definitions:

* number of attributes of an expression: the attribute values it holds — its category, each own attribute,
  and for a sentence the relation, the anchor's category and the anchor's own attributes;
* content (Fig. 3e): ``cat`` / ``att`` / ``rel`` = share of expressions that contain a category word / an own
  attribute of the target / a relation; ``cat+`` / ``att+`` / ``rel+`` = share singled out by that step;
* length: words (letters, hyphenated words count once); vocabulary: distinct lower-cased words;
* words outside DIOR-RSVG's vocabulary: the share of the words (every occurrence, and distinct words) that
  DIOR-RSVG's 38,320 expressions never use (:mod:`rsvg.construct.dior_rsvg_words`, counted on the text split on
  spaces); 0 % for datasets built here, which write only its words. A model trained on a dataset meets these words
  nowhere in DIOR-RSVG's queries;
* box area: fraction of the image area.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsvg.construct.dior_rsvg_words import DIOR_RSVG_WORDS, outside_dior_rsvg
from rsvg.construct.matching import ExpressionSpec
from rsvg.construct.parsing import CATEGORY_SYNONYMS, normalize, parse_expression
from rsvg.construct.pipeline import PROVENANCE_TAG
from rsvg.construct.steps import STEPS, TEXT_INFERRED_NOTE, steps_label
from rsvg.construct.vocabulary import LOCATION_PHRASES, LOCATIONS, OWN_ATTRIBUTES, RELATIONS
from rsvg.data.categories import DIOR_CLASSES, natural_name
from rsvg.data.dior_rsvg import group_by_split, read_grounding_annotations
from rsvg.data.records import DatasetError, GroundingSample
from rsvg.data.xmlio import atomic_write_text, child_text

STOP_WORDS = frozenset({"the", "a", "an", "is", "of", "on", "in", "at", "to", "than", "and", "which", "that"})
PAPER_NUMBERS: dict[str, Any] = {
    "expressions": 38320,
    "images": 17402,
    "categories": 20,
    "length_mean": 7.47,
    "length_min": 3,
    "length_max": 22,
    "vocabulary": 100,
    "cat+": 38.36,
    "att+": 56.62,
    "rel+": 15.74,
}
TOP_WORDS = 15
#: measured on the published DIOR-RSVG annotations (all 38,320 expressions): the share of relation sentences
#: ("The X is on the ... of the ...") and each location phrase's share among all location phrases (target's and
#: anchor's; the rest, under 1 %, are rarer wordings such as "on the far left")
DIOR_RSVG_TEXT: dict[str, Any] = {
    "sentences_percent": 25.5,
    "location_phrases_percent": {
        "middle": 21.6,
        "right": 13.6,
        "left": 13.0,
        "bottom": 9.7,
        "top": 8.8,
        "top right": 8.4,
        "bottom left": 8.3,
        "bottom right": 8.2,
        "top left": 8.1,
    },
}


@dataclass(frozen=True)
class ExpressionRecord:
    """One expression with what the statistics need."""

    sample: GroundingSample
    spec: ExpressionSpec
    step: str
    from_provenance: bool
    words: tuple[str, ...]


def _provenance_tags(root: Path) -> list[str | None]:
    """The ``<provenance>`` text of every object, in global-index order (None where absent)."""
    out: list[str | None] = []
    for xml_path in sorted((root / "Annotations").glob("*.xml"), key=lambda p: p.name):
        try:
            xml_root = ET.parse(xml_path).getroot()
        except ET.ParseError:
            continue  # the reader skips it too
        out.extend(child_text(obj, PROVENANCE_TAG) for obj in xml_root.findall("object"))
    return out


def collect_records(root: Path) -> list[ExpressionRecord]:
    """Every usable expression of a DIOR-RSVG-style folder, with its attributes."""
    ann = read_grounding_annotations(Path(root))
    tags = _provenance_tags(Path(root))
    usable = [s for s in ann.samples if s.index not in ann.unusable]
    per_image_category = Counter((s.image_id, s.category) for s in usable)
    records = []
    for s in usable:
        tag = tags[s.index] if s.index < len(tags) else None
        words = tuple(normalize(s.description).split())
        prov = None
        if tag:
            try:
                prov = json.loads(tag)
            except json.JSONDecodeError:
                prov = None
        if prov is not None:
            spec = ExpressionSpec.from_dict(prov)
            records.append(ExpressionRecord(s, spec, prov.get("step", ""), True, words))
            continue
        spec = parse_expression(s.description).spec
        if spec.relation is not None:
            step = "rel+"
        elif per_image_category[(s.image_id, s.category)] == 1:
            step = "cat+"
        else:
            step = "att+"
        records.append(ExpressionRecord(s, spec, step, False, words))
    return records


def _share(n: int, total: int) -> float:
    return round(100.0 * n / total, 2) if total else 0.0


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return {
        "mean": round(float(values.mean()), 4),
        "min": round(float(values.min()), 4),
        "p5": round(float(q[0]), 4),
        "p25": round(float(q[1]), 4),
        "median": round(float(q[2]), 4),
        "p75": round(float(q[3]), 4),
        "p95": round(float(q[4]), 4),
        "max": round(float(values.max()), 4),
    }


def _category_words() -> frozenset[str]:
    return frozenset(w for name in CATEGORY_SYNONYMS for w in name.split())


def word_groups(records: list[ExpressionRecord]) -> dict[str, Counter]:
    """Word frequencies of category names, own-attribute words, relation words and all content words."""
    groups: dict[str, Counter] = {
        "categories": Counter(),
        "attributes": Counter(),
        "relations": Counter(),
        "all": Counter(),
    }
    category_words = _category_words()
    for r in records:
        for phrase in (r.spec.target, r.spec.anchor):
            if phrase is None:
                continue
            if phrase.category:
                groups["categories"][natural_name(phrase.category)] += 1
            groups["attributes"].update(w for _, w in phrase.attributes)
        if r.spec.relation is not None:
            groups["relations"][r.spec.relation[1]] += 1
        groups["all"].update(w for w in r.words if w not in STOP_WORDS and w not in category_words)
        groups["all"].update(natural_name(p.category) for p in (r.spec.target, r.spec.anchor) if p and p.category)
    return groups


def outside_vocabulary(records: list[ExpressionRecord]) -> dict[str, Any]:
    """How many of the records' words DIOR-RSVG's expressions never use: occurrences and distinct words, with
    the most frequent such words."""
    tokens = Counter(w for r in records for w in r.words)
    outside = Counter(outside_dior_rsvg(tokens.elements()))
    return {
        "tokens": tokens.total(),
        "tokens_outside": outside.total(),
        "tokens_percent": _share(outside.total(), tokens.total()),
        "distinct": len(tokens),
        "distinct_outside": len(outside),
        "distinct_percent": _share(len(outside), len(tokens)),
        "dior_rsvg_vocabulary": len(DIOR_RSVG_WORDS),
        "top_outside": dict(outside.most_common(TOP_WORDS)),
    }


def compute_stats(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(stats, arrays)``: the JSON-able statistics and the raw values the figures plot."""
    records = collect_records(root)
    if not records:
        raise DatasetError(f"no usable expression in {root}")
    n = len(records)
    categories = Counter(r.sample.category for r in records)
    own_by_cat: dict[str, Counter] = defaultdict(Counter)
    rel_by_cat: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        for attr, _ in r.spec.target.attributes:
            own_by_cat[r.sample.category][attr] += 1
        if r.spec.relation is not None:
            rel_by_cat[r.sample.category][r.spec.relation[0]] += 1
    locations = Counter(
        phrase.get("location")
        for r in records
        for phrase in (r.spec.target, r.spec.anchor)
        if phrase is not None and phrase.get("location")
    )
    lengths = np.array([len(r.words) for r in records])
    widths = np.array([r.sample.box[2] - r.sample.box[0] for r in records], float)
    heights = np.array([r.sample.box[3] - r.sample.box[1] for r in records], float)
    image_areas = np.array([max(r.sample.width * r.sample.height, 1) for r in records], float)
    areas = widths * heights / image_areas
    steps = Counter(r.step for r in records)
    groups = word_groups(records)
    order = [c for c in DIOR_CLASSES if c in categories] + sorted(set(categories) - set(DIOR_CLASSES))
    stats: dict[str, Any] = {
        "root": str(root),
        "images": len({r.sample.image_id for r in records}),
        "expressions": n,
        "with_provenance": sum(r.from_provenance for r in records),
        "splits": {k: len(v) for k, v in group_by_split(Path(root)).items()},
        "categories": {c: categories[c] for c in order},
        "category_share_percent": {c: _share(categories[c], n) for c in order},
        "attributes_per_expression": dict(sorted(Counter(r.spec.num_attributes for r in records).items())),
        "own_attributes_by_category_percent": {
            c: {a: _share(own_by_cat[c][a], categories[c]) for a in OWN_ATTRIBUTES} for c in order
        },
        "relations_by_category_percent": {
            c: {a: _share(rel_by_cat[c][a], categories[c]) for a in RELATIONS} for c in order
        },
        "content_percent": {
            "cat": _share(sum(bool(r.spec.target.category) for r in records), n),
            "cat+": _share(steps["cat+"], n),
            "att": _share(sum(bool(r.spec.target.attributes) for r in records), n),
            "att+": _share(steps["att+"], n),
            "rel": _share(sum(r.spec.relation is not None for r in records), n),
            "rel+": _share(steps["rel+"], n),
        },
        "location_phrases_percent": {w: _share(locations[w], locations.total()) for w in LOCATIONS},
        "length": {
            "mean": round(float(lengths.mean()), 2),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
            "histogram": {int(k): int(v) for k, v in sorted(Counter(lengths.tolist()).items())},
        },
        "vocabulary": len({w for r in records for w in r.words}),
        "outside_dior_rsvg_vocabulary": outside_vocabulary(records),
        "box_width_px": _summary(widths),
        "box_height_px": _summary(heights),
        "box_area_fraction": _summary(areas),
        "top_words": {g: dict(c.most_common(TOP_WORDS)) for g, c in groups.items()},
        "paper": PAPER_NUMBERS,
        "dior_rsvg_text": DIOR_RSVG_TEXT,
    }
    arrays = {"lengths": lengths, "widths": widths, "heights": heights, "areas": areas, "words": groups}
    return stats, arrays


def outside_row(stats: dict[str, Any]) -> str:
    """ "0.00 / 0.00": the share of words, and of distinct words, outside DIOR-RSVG's vocabulary."""
    outside = stats["outside_dior_rsvg_vocabulary"]
    return f"{outside['tokens_percent']:.2f} / {outside['distinct_percent']:.2f}"


def outside_words_text(stats: dict[str, Any]) -> str | None:
    """ "Words outside DIOR-RSVG's vocabulary: larger (133), round (133)", or ``None`` when there are none."""
    top = stats["outside_dior_rsvg_vocabulary"]["top_outside"]
    if not top:
        return None
    return "Words outside DIOR-RSVG's vocabulary: " + ", ".join(f"{w} ({c})" for w, c in top.items())


def _outside_words_line(stats: dict[str, Any]) -> list[str]:
    text = outside_words_text(stats)
    return ["", text + "."] if text else []


def _markdown(stats: dict[str, Any]) -> str:
    paper = stats["paper"]
    length = stats["length"]
    content = stats["content_percent"]
    estimated = steps_label(stats)
    suffix = f", {estimated}" if estimated else ""
    paper_suffix = " (from the construction)" if estimated else ""
    lines = [
        f"# Dataset statistics: {stats['root']}",
        "",
        "| | this dataset | paper (DIOR-RSVG) |",
        "|---|---:|---:|",
        f"| images | {stats['images']} | {paper['images']} |",
        f"| expressions | {stats['expressions']} | {paper['expressions']} |",
        f"| categories | {len(stats['categories'])} | {paper['categories']} |",
        f"| mean length (words) | {length['mean']:.2f} | {paper['length_mean']} |",
        f"| min / max length | {length['min']} / {length['max']} | {paper['length_min']} / {paper['length_max']} |",
        f"| vocabulary | {stats['vocabulary']} | {paper['vocabulary']} |",
        f"| words outside DIOR-RSVG's vocabulary (% of words / of distinct words) | {outside_row(stats)} | 0 / 0 |",
        *(f"| {step} (%{suffix}) | {content[step]:.2f} | {paper[step]}{paper_suffix} |" for step in STEPS),
        f"| relation sentences (%) | {content['rel']:.2f} | {stats['dior_rsvg_text']['sentences_percent']} |",
        "",
        "## Location phrases (share of all location phrases, %)",
        "",
        "| phrase | this dataset | DIOR-RSVG |",
        "|---|---:|---:|",
        *(
            f"| {LOCATION_PHRASES[w]} | {stats['location_phrases_percent'][w]:.2f} | "
            f"{stats['dior_rsvg_text']['location_phrases_percent'][w]} |"
            for w in LOCATIONS
        ),
        "",
        "DIOR-RSVG's figures here were measured on its published annotations (all 38,320 expressions); its "
        f"vocabulary is their {stats['outside_dior_rsvg_vocabulary']['dior_rsvg_vocabulary']} distinct words.",
        *_outside_words_line(stats),
        "",
        f"Expressions with provenance: {stats['with_provenance']} of {stats['expressions']} "
        "(the others' attributes are read from the text).",
        *(["", TEXT_INFERRED_NOTE] if estimated else []),
        f"Splits: {stats['splits'] or 'none'}. Content (%): {content}.",
        "",
        "## Categories",
        "",
        "| category | expressions | % |",
        "|---|---:|---:|",
        *(f"| {c} | {k} | {stats['category_share_percent'][c]:.2f} |" for c, k in stats["categories"].items()),
        "",
        "## Attributes per expression",
        "",
        "| attributes | expressions |",
        "|---:|---:|",
        *(f"| {k} | {v} |" for k, v in stats["attributes_per_expression"].items()),
        "",
        "## Boxes",
        "",
        f"- width (px): {stats['box_width_px']}",
        f"- height (px): {stats['box_height_px']}",
        f"- area (fraction of the image): {stats['box_area_fraction']}",
        "",
        "## Top words",
        "",
        *(f"- {g}: {', '.join(f'{w} ({c})' for w, c in top.items())}" for g, top in stats["top_words"].items()),
        "",
        "Figures: `fig3_expressions.png` (paper Fig. 3) and `fig4_boxes_words.png` (paper Fig. 4, word clouds as "
        "bar charts).",
        "",
    ]
    return "\n".join(lines)


def dataset_stats(root: Path, out: Path) -> dict[str, Any]:
    """Analyse the DIOR-RSVG-style dataset at ``root``; write figures, ``stats.json`` and ``stats.md`` to ``out``."""
    # imported here: matplotlib takes about half a second to load, and rsvg.construct (which the CLI loads at
    # start-up) imports this module
    from rsvg.construct.figures import plot_fig3, plot_fig4

    stats, arrays = compute_stats(Path(root))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stats["figures"] = [plot_fig3(stats, arrays, out).name, plot_fig4(stats, arrays, out).name]
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    atomic_write_text(out / "stats.md", _markdown(stats))
    return stats
