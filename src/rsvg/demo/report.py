"""The demo's self-contained HTML report: metrics, baselines, training curve, dataset figures, gallery."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from rsvg.data.categories import NATURAL_NAMES
from rsvg.data.xmlio import atomic_write_text
from rsvg.demo.gallery import BOX_KINDS, SHOWN_WIDTH
from rsvg.engine.evaluate import metrics_from_rows
from rsvg.metrics import METRIC_NAMES
from rsvg.models.stages import result_notes

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} .headline{font-size:1.3rem;background:#eef6ee;padding:.8rem;
border-radius:6px} figure{display:inline-block;margin:.4rem;width:{shown}px;vertical-align:top}
figure img{width:100%;border:1px solid #ccc} figcaption{font-size:.85rem} .bad{color:#b00} .good{color:#070}
img.wide{max-width:100%;border:1px solid #ddd} code{background:#f5f5f5;padding:0 .2rem}
.swatch{display:inline-block;width:1.6em;height:.8em;vertical-align:middle;margin-right:.3em}
""".replace("{shown}", str(SHOWN_WIDTH))  # the width the gallery's labels are sized for


def _img(path: Path, cls: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img class="{cls}" src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def _metric_row(name: str, values: dict[str, float], count: int | str = "") -> str:
    cells = "".join(f"<td>{values[m]:.2f}</td>" for m in METRIC_NAMES)
    return f"<tr><td>{html.escape(name)}</td><td>{count}</td>{cells}</tr>"


def _metric_table(rows: list[str]) -> str:
    head = "".join(f"<th>{m}</th>" for m in METRIC_NAMES)
    return f"<table><tr><th></th><th>n</th>{head}</tr>{''.join(rows)}</table>"


#: the keys of a training history row (``history.json``, written by :class:`rsvg.engine.trainer.Trainer`) that
#: are not loss terms; every other number in a row is the epoch's mean of one term, ``"loss"`` (the weighted sum
#: that is back-propagated) first
HISTORY_NOT_LOSS = frozenset({"epoch", "samples_per_s", "lr", "seconds", "val"})
TOTAL_LOSS_LABEL = "loss: the weighted sum of all terms"


def loss_terms(history: list[dict[str, Any]]) -> list[str]:
    """The loss series a training history records, as its rows name them: ``"loss"`` (the weighted sum) first,
    then each term (e.g. ``l1``, ``giou``, ``cell``) in the order the rows give them."""
    names: dict[str, None] = {}
    for row in history:
        for key, value in row.items():
            if key not in HISTORY_NOT_LOSS and isinstance(value, int | float):
                names[key] = None
    return sorted(names, key=lambda k: k != "loss")  # stable: the terms keep their order


def training_curve_figure(history: list[dict[str, Any]]) -> Any:
    """A matplotlib figure of the training history: each loss series of :func:`loss_terms` per epoch, labelled
    with its history key (the back-propagated ``loss`` as the weighted sum of the terms, since the terms are
    recorded unweighted), on a log axis so terms of different sizes all show (a term that is 0 has no point
    there); validation Pr@0.5 on a second axis. Epochs are ticked as whole numbers only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    # blue is the sum's and red validation's; the terms take the other colours, then dashed lines in them again
    palette = ["tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]
    styles = iter((colour, dash) for dash in ("-", "--", ":") for colour in palette)
    for name in loss_terms(history):
        points = [(h["epoch"], h[name]) for h in history if name in h]
        total = name == "loss"
        colour, dash = ("tab:blue", "-") if total else next(styles, ("black", "-."))
        ax.plot(
            *zip(*points, strict=True),
            color=colour,
            linestyle=dash,
            linewidth=2.2 if total else 1.2,
            marker="o",
            markersize=4,
            label=TOTAL_LOSS_LABEL if total else name,
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss, per term (log)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(epochs) == 1:  # one point: half an epoch either side, so the only tick is that epoch
        ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    ax2 = ax.twinx()
    val = [(h["epoch"], h["val"]["Pr@0.5"]) for h in history if "val" in h]
    if val:
        ax2.plot(*zip(*val, strict=True), color="tab:red", marker="s", linestyle="--", label="validation Pr@0.5")
    ax2.set_ylabel("validation Pr@0.5 (%)", color="tab:red")
    ax2.set_ylim(0, 100)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small")
    fig.tight_layout()
    return fig


def training_curve_png(history: list[dict[str, Any]]) -> bytes:
    """:func:`training_curve_figure` as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = training_curve_figure(history)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def format_seconds(seconds: float) -> str:
    """A step's wall time as the report prints it: tenths of a second, hundredths under 0.05 s (a fast step
    does not read as 0.0 s), "< 0.01 s" below that, and the minutes too from a minute on."""
    if seconds < 0.005:
        return "< 0.01 s"
    if seconds < 0.05:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds:,.1f} s ({seconds / 60:.1f} min)"


def measured_seconds(step: dict[str, Any]) -> float | None:
    """A step's measured wall time: this run's, or for a step reused from an earlier run the time it took then,
    as its stamp recorded it (``None`` when the stamp predates that record)."""
    return step.get("ran_seconds") if step["reused"] else step["seconds"]


def step_time(step: dict[str, Any]) -> str:
    """The time column of one step: :func:`measured_seconds` (:func:`format_seconds`), marked when reused."""
    seconds = measured_seconds(step)
    if not step["reused"]:
        return format_seconds(seconds)
    return "reused" if seconds is None else f"reused (took {format_seconds(seconds)})"


def training_sentence(step: dict[str, Any] | None, epochs: int) -> str:
    """The headline's sentence on training: the train step's measured wall time, the same number the steps
    table shows (:func:`step_time`), so the two never disagree."""
    count = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    if step is None:
        return f"Training: {count}."
    seconds = measured_seconds(step)
    if seconds is None:
        return f"Training: {count}, reused from an earlier run."
    when = " in an earlier run, reused here" if step["reused"] else ""
    return f"Training took {format_seconds(seconds)}{when} ({count})."


_SWATCH = {"solid": "3px solid", "thin": "1.5px solid", "dashed": "3px dashed"}  # a legend swatch per box line


def gallery_legend() -> str:
    """The gallery's legend: a swatch and a sentence for every box colour the gallery draws
    (:data:`rsvg.demo.gallery.BOX_KINDS`, the same list the pictures are drawn from), then the heatmap."""
    items = "".join(
        f"<li><span class='swatch' style='border-top:{_SWATCH[k.line]} rgb{k.colour}'></span>"
        f"<b>{html.escape(k.label)}</b> ({k.colour_name}{'' if k.line == 'solid' else ', ' + k.line}): "
        f"{html.escape(k.meaning)}</li>"
        for k in BOX_KINDS
    )
    return (
        f"<p>Boxes, each labelled on the picture:</p><ul>{items}</ul>"
        "<p>Colours under the boxes: where the model looks (with the cells head: the softmax of the cell scores, "
        "i.e. how sure it is that each cell holds the referred object; with the paper's [REG] head: the [REG] "
        "token's attention over the image in the last fusion layer).</p>"
    )


def _model_step_notes(predictions: Path) -> str:
    """Paragraphs on what each stage after the first look did on the test split, as the stages describe it
    (:func:`rsvg.models.stages.result_notes`); empty for a model without them."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    return "\n".join(result_notes(rows, lambda marked: metrics_from_rows(marked).overall.values["Pr@0.5"]))


def write_report(out: Path, steps: dict[str, dict[str, Any]], baselines: dict[str, dict[str, float]]) -> Path:
    """Write ``out/report.html`` from the outputs of the demo steps; returns its path."""
    out = Path(out)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    history = json.loads((out / "run" / "history.json").read_text())
    gallery = json.loads((out / "gallery" / "gallery.json").read_text())
    build = json.loads((out / "rsvg" / "build_summary.json").read_text())
    overall = metrics["overall"]
    curve = out / "training_curve.png"
    curve.write_bytes(training_curve_png(history))

    rows = [_metric_row("MGVLF (lite config)", overall["values"], overall["count"])]
    rows += [_metric_row(name, vals) for name, vals in baselines.items()]
    per_cat = [
        _metric_row(NATURAL_NAMES.get(cat, cat), m["values"], m["count"]) for cat, m in metrics["per_category"].items()
    ]
    model_steps = _model_step_notes(out / "eval" / "predictions.jsonl")
    pr50 = overall["values"]["Pr@0.5"]
    blind = max(v["Pr@0.5"] for v in baselines.values())
    figures = "".join(_img(p, "wide") + "<br>" for p in sorted((out / "stats").glob("*.png")))
    cards = []
    for item in gallery:
        cls = "good" if item["success"] else "bad"
        label = "success" if item["success"] else "failure"
        cards.append(
            f"<figure>{_img(out / 'gallery' / item['file'])}<figcaption><b>{html.escape(item['query'])}</b><br>"
            f"<span class='{cls}'>{label}, IoU {item['iou']:.2f}</span> — {html.escape(item['category'])}, "
            f"image {html.escape(item['image_id'])}"
            + (f"<br><small>{html.escape(item['provenance'])}</small>" if item.get("provenance") else "")
            + "</figcaption></figure>"
        )
    step_rows = ""
    for name, s in steps.items():
        step_rows += (
            f"<tr><td>{html.escape(name)}</td><td>{step_time(s)}</td>"
            f"<td style='text-align:left'><code>{html.escape(s['command'])}</code></td></tr>"
        )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rsvg demo report</title>
<style>{CSS}</style></head><body>
<h1>rsvg demo report</h1>
<p>MGVLF (Zhan et al., IEEE TGRS 2023) trained on a grounding dataset built by <code>rsvg build</code> from synthetic
aerial scenes: {build.get("images_written", "?")} images, {build.get("expressions", "?")} expressions.</p>
<p class="headline">Test Pr@0.5: <b>{pr50:.2f} %</b> on {overall["count"]} expressions — against {blind:.2f} % for the
best query-blind baseline. {training_sentence(steps.get("train"), len(history))}</p>
<h2>The seven metrics (test split, %)</h2>
<p>Pr@k: share of expressions whose predicted box has IoU &gt; k with the truth; meanIoU: mean IoU; cumIoU: total
intersection over total union. The baselines ignore the query: the <i>prior box</i> is the training split's mean box;
<i>blind pick</i> sees every referred object of the image perfectly and picks one at random (expected values).</p>
{_metric_table(rows)}
{model_steps}
<h2>Per category (test split, %)</h2>
{_metric_table(per_cat)}
<h2>Training</h2>
{_img(curve, "wide")}
<h2>Gallery</h2>
{gallery_legend()}
{"".join(cards)}
<h2>Dataset (paper Fig. 3 and Fig. 4)</h2>
{figures}
<h2>Steps and how to re-run each alone</h2>
<table><tr><th>step</th><th>time</th><th>command</th></tr>{step_rows}</table>
</body></html>
"""
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
