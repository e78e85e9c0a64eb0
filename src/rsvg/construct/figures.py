"""The paper's Fig. 3 (expressions) and Fig. 4 (boxes and words) as PNG files, drawn with matplotlib's Agg
canvas directly (the global backend is left alone). Word clouds are drawn as bar charts of the top words.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rsvg.construct.steps import steps_label
from rsvg.construct.vocabulary import OWN_ATTRIBUTES, RELATIONS
from rsvg.data.categories import natural_name

FIG3_FILE = "fig3_expressions.png"
FIG4_FILE = "fig4_boxes_words.png"
_LABELS = {
    "color": "colour (a2)",
    "size": "size (a3)",
    "geometry": "geometry (a4)",
    "location": "location (a5)",
    "relative_location": "relative location (a6)",
    "relative_size": "relative size (a7)",
}


def _label(category: str) -> str:
    try:
        return natural_name(category)
    except KeyError:
        return category


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _stacked(ax: Any, table: dict[str, dict[str, float]], keys: tuple[str, ...], title: str) -> None:
    cats = list(table)
    left = np.zeros(len(cats))
    for key in keys:
        vals = np.array([table[c][key] for c in cats])
        ax.barh(range(len(cats)), vals, left=left, label=_LABELS[key])
        left += vals
    ax.set_yticks(range(len(cats)), [_label(c) for c in cats], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of the category's expressions (stacked)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)


def plot_fig3(stats: dict[str, Any], arrays: dict[str, Any], out: Path) -> Path:
    """Fig. 3: (a) categories, (b) attributes per expression, (c)/(d) attribute and relation breakdown per
    category, (e) cat/cat+ att/att+ rel/rel+, (f) expression length."""
    fig = Figure(figsize=(16, 10))
    axes = fig.subplots(2, 3)
    cats = stats["category_share_percent"]
    ax = axes[0, 0]
    ax.barh(range(len(cats)), list(cats.values()), color="tab:blue")
    ax.set_yticks(range(len(cats)), [_label(c) for c in cats], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of expressions")
    ax.set_title("(a) Frequency of object categories")
    ax = axes[0, 1]
    hist = stats["attributes_per_expression"]
    total = sum(hist.values())
    ax.bar([str(k) for k in hist], [100 * v / total for v in hist.values()], color="tab:orange")
    ax.set_xlabel("attributes in the expression")
    ax.set_ylabel("% of expressions")
    ax.set_title("(b) Frequency of attributes number")
    _stacked(
        axes[0, 2],
        stats["own_attributes_by_category_percent"],
        OWN_ATTRIBUTES,
        "(c) Object attribute breakdown by categories",
    )
    _stacked(
        axes[1, 0],
        stats["relations_by_category_percent"],
        RELATIONS,
        "(d) Relationship attribute breakdown by categories",
    )
    ax = axes[1, 1]
    content = stats["content_percent"]
    groups = [("cat", "cat+"), ("att", "att+"), ("rel", "rel+")]
    x = np.arange(len(groups))
    ax.bar(x - 0.2, [content[a] for a, _ in groups], 0.4, label="has it (cat / att / rel)")
    ax.bar(x + 0.2, [content[b] for _, b in groups], 0.4, label="singled out by it (cat+ / att+ / rel+)")
    ax.set_xticks(x, ["category", "own attributes", "relations"])
    ax.set_ylabel("% of expressions")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    estimated = steps_label(stats)
    ax.set_title("(e) Content in query expressions" + (f"\n(cat+/att+/rel+ {estimated})" if estimated else ""))
    ax = axes[1, 2]
    lengths = arrays["lengths"]
    ax.hist(lengths, bins=np.arange(lengths.min(), lengths.max() + 2) - 0.5, color="tab:green")
    length = stats["length"]
    ax.axvline(length["mean"], color="k", linestyle="--", label=f"mean {length['mean']:.2f}")
    ax.set_xlabel(f"words (min {length['min']}, max {length['max']})")
    ax.set_ylabel("expressions")
    ax.legend(fontsize=8)
    ax.set_title("(f) Distribution of query expression length")
    return _save(fig, Path(out) / FIG3_FILE)


def _top_bars(ax: Any, counts: Counter, title: str, n: int = 15) -> None:
    top = counts.most_common(n)
    if not top:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.barh(range(len(top)), [c for _, c in top], color="tab:purple")
        ax.set_yticks(range(len(top)), [w for w, _ in top], fontsize=7)
        ax.invert_yaxis()
    ax.set_title(title)


def plot_fig4(stats: dict[str, Any], arrays: dict[str, Any], out: Path) -> Path:
    """Fig. 4: box width, height and area distributions; the top words of categories, attributes,
    relations and the whole dataset."""
    fig = Figure(figsize=(18, 9))
    grid = fig.add_gridspec(2, 12)
    for k, (key, title, unit) in enumerate(
        [
            ("widths", "(a) bounding box width", "pixels"),
            ("heights", "(b) bounding box height", "pixels"),
            ("areas", "(c) bounding box area", "% of the image"),
        ]
    ):
        ax = fig.add_subplot(grid[0, 4 * k : 4 * k + 4])
        values = arrays[key] * (100.0 if key == "areas" else 1.0)
        ax.hist(values, bins=40, color="tab:blue")
        ax.set_xlabel(unit)
        ax.set_ylabel("expressions")
        ax.set_title(title)
    words = arrays["words"]
    for k, (group, title) in enumerate(
        [
            ("categories", "(d) object categories"),
            ("attributes", "(e) object attributes"),
            ("relations", "(f) relationship attributes"),
            ("all", "(g) all expressions"),
        ]
    ):
        _top_bars(fig.add_subplot(grid[1, 3 * k : 3 * k + 3]), words[group], f"{title}: top words")
    return _save(fig, Path(out) / FIG4_FILE)
